from .module_optim_constructor import (
                                       ModuleOptimWrapperConstructor,
                                       MultiOptimDistributedDataParallel,
                                       multi_optim_train_step,
)

__all__ = ['ModuleOptimWrapperConstructor', 'multi_optim_train_step', 'MultiOptimDistributedDataParallel']
