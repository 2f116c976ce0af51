"""Registries of mmvlg.

Every registry is a child of MMDetection's (and so of MMEngine's) registry of the same name, so a config
with ``default_scope='mmvlg'`` can name ``mmdet.`` types (``type='mmdet.ResNet'``) and an MMDetection config
can use mmvlg types after ``custom_imports=dict(imports=['mmvlg'])`` with the ``mmvlg.`` prefix.
``locations`` lets the registries import the modules that fill them on first use.

An ``mmvlg.`` type inside an MMDetection config (``default_scope='mmdet'``, ``type='mmvlg.MDETR'``) needs no
``_scope_='mmvlg'``: every class registered here builds in mmvlg's scope (:class:`MMVLGRegistry`), so the
unprefixed type names of its children (a detector's ``LowLevelFusionNeck``, a dataset's
``LoadGroundingAnnotations``) resolve as in mmvlg's own configs: mmvlg first, then MMDetection and MMEngine.
"""
import functools
import inspect
from contextlib import contextmanager
from typing import Iterator, Optional, Type

from mmdet.registry import DATA_SAMPLERS as MMDET_DATA_SAMPLERS
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import EVALUATOR as MMDET_EVALUATOR
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import LOG_PROCESSORS as MMDET_LOG_PROCESSORS
from mmdet.registry import LOOPS as MMDET_LOOPS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODEL_WRAPPERS as MMDET_MODEL_WRAPPERS
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMDET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import OPTIM_WRAPPERS as MMDET_OPTIM_WRAPPERS
from mmdet.registry import OPTIMIZERS as MMDET_OPTIMIZERS
from mmdet.registry import PARAM_SCHEDULERS as MMDET_PARAM_SCHEDULERS
from mmdet.registry import RUNNER_CONSTRUCTORS as MMDET_RUNNER_CONSTRUCTORS
from mmdet.registry import RUNNERS as MMDET_RUNNERS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmdet.registry import VISBACKENDS as MMDET_VISBACKENDS
from mmdet.registry import VISUALIZERS as MMDET_VISUALIZERS
from mmdet.registry import WEIGHT_INITIALIZERS as MMDET_WEIGHT_INITIALIZERS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import DefaultScope, Registry

SCOPE = 'mmvlg'
# Classes of these packages registered into an mmvlg registry keep their own __init__ (see construct_in_mmvlg_scope).
FOREIGN_PACKAGES = ('mmdet', 'mmengine', 'mmcv', 'mmpretrain', 'torch', 'torchvision', 'transformers')


@contextmanager
def mmvlg_scope() -> Iterator[None]:
    """Make mmvlg the default scope inside the block (nothing is switched when it already is)."""
    current = DefaultScope.get_current_instance()
    if current is not None and current.scope_name == SCOPE:
        yield
    else:
        with DefaultScope.overwrite_default_scope(SCOPE):
            yield


def construct_in_mmvlg_scope(cls: Type) -> Type:
    """Run ``cls.__init__`` in mmvlg's scope (see :func:`mmvlg_scope`); returns ``cls``.

    MMEngine resolves an unprefixed type name in the *default* scope, not in the scope of the class being
    built: under ``default_scope='mmdet'``, ``MDETR.__init__`` building ``dict(type='LowLevelFusionNeck')``
    (or a dataset's ``Compose`` building ``dict(type='LoadGroundingAnnotations')``) would search mmdet's
    registry and fail. The wrapped ``__init__`` keeps the original's signature (``__wrapped__``).
    """
    init = cls.__init__
    if init is object.__init__ or getattr(init, '_mmvlg_scoped', False):  # nothing to build, or done
        return cls
    if cls.__module__.split('.')[0] in FOREIGN_PACKAGES:  # never change another package's class
        return cls

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        with mmvlg_scope():
            init(self, *args, **kwargs)

    __init__._mmvlg_scoped = True
    cls.__init__ = __init__
    return cls


class MMVLGRegistry(Registry):
    """A registry whose classes are constructed in mmvlg's default scope (:func:`construct_in_mmvlg_scope`).

    Used for every registry of parts; not for runners and inferencers, which set up their own default scope
    from the config (a scope created inside a switched block does not outlive it).
    """

    def _register_module(self, module, module_name: Optional[str] = None, force: bool = False) -> None:
        if inspect.isclass(module):
            construct_in_mmvlg_scope(module)
        super()._register_module(module, module_name, force)


RUNNERS = Registry('runner', parent=MMDET_RUNNERS, locations=['mmvlg.engine'])
RUNNER_CONSTRUCTORS = Registry('runner constructor', parent=MMDET_RUNNER_CONSTRUCTORS,
                               locations=['mmvlg.engine'])
LOOPS = MMVLGRegistry('loop', parent=MMDET_LOOPS, locations=['mmvlg.engine'])
HOOKS = MMVLGRegistry('hook', parent=MMDET_HOOKS, locations=['mmvlg.engine.hooks'])

DATASETS = MMVLGRegistry('dataset', parent=MMDET_DATASETS, locations=['mmvlg.datasets'])
DATA_SAMPLERS = MMVLGRegistry('data sampler', parent=MMDET_DATA_SAMPLERS, locations=['mmvlg.datasets'])
TRANSFORMS = MMVLGRegistry('transform', parent=MMDET_TRANSFORMS, locations=['mmvlg.datasets.transforms'])

MODELS = MMVLGRegistry('model', parent=MMDET_MODELS, locations=['mmvlg.models'])
MODEL_WRAPPERS = MMVLGRegistry('model_wrapper', parent=MMDET_MODEL_WRAPPERS, locations=['mmvlg.models'])
WEIGHT_INITIALIZERS = MMVLGRegistry('weight initializer', parent=MMDET_WEIGHT_INITIALIZERS,
                                    locations=['mmvlg.models'])
TASK_UTILS = MMVLGRegistry('task util', parent=MMDET_TASK_UTILS, locations=['mmvlg.models'])

OPTIMIZERS = MMVLGRegistry('optimizer', parent=MMDET_OPTIMIZERS, locations=['mmvlg.engine'])
OPTIM_WRAPPERS = MMVLGRegistry('optim_wrapper', parent=MMDET_OPTIM_WRAPPERS, locations=['mmvlg.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = MMVLGRegistry('optimizer wrapper constructor',
                                           parent=MMDET_OPTIM_WRAPPER_CONSTRUCTORS, locations=['mmvlg.engine'])
PARAM_SCHEDULERS = MMVLGRegistry('parameter scheduler', parent=MMDET_PARAM_SCHEDULERS,
                                 locations=['mmvlg.engine'])

METRICS = MMVLGRegistry('metric', parent=MMDET_METRICS, locations=['mmvlg.evaluation'])
EVALUATOR = MMVLGRegistry('evaluator', parent=MMDET_EVALUATOR, locations=['mmvlg.evaluation'])

VISUALIZERS = MMVLGRegistry('visualizer', parent=MMDET_VISUALIZERS, locations=['mmvlg.visualization'])
VISBACKENDS = MMVLGRegistry('vis_backend', parent=MMDET_VISBACKENDS, locations=['mmvlg.visualization'])
LOG_PROCESSORS = MMVLGRegistry('log_processor', parent=MMDET_LOG_PROCESSORS, locations=['mmvlg.visualization'])

INFERENCERS = Registry('inferencer', parent=MMENGINE_INFERENCERS, locations=['mmvlg.apis'])
