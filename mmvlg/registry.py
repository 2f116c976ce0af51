"""Registries of mmvlg.

Every registry is a child of MMDetection's (and so of MMEngine's) registry of the same name, so a config
with ``default_scope='mmvlg'`` can name ``mmdet.`` types (``type='mmdet.ResNet'``) and an MMDetection config
can use mmvlg types after ``custom_imports=dict(imports=['mmvlg'])`` with the ``mmvlg.`` prefix.
``locations`` lets the registries import the modules that fill them on first use.
"""
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
from mmengine.registry import Registry

RUNNERS = Registry('runner', parent=MMDET_RUNNERS, locations=['mmvlg.engine'])
RUNNER_CONSTRUCTORS = Registry('runner constructor', parent=MMDET_RUNNER_CONSTRUCTORS,
                               locations=['mmvlg.engine'])
LOOPS = Registry('loop', parent=MMDET_LOOPS, locations=['mmvlg.engine'])
HOOKS = Registry('hook', parent=MMDET_HOOKS, locations=['mmvlg.engine.hooks'])

DATASETS = Registry('dataset', parent=MMDET_DATASETS, locations=['mmvlg.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMDET_DATA_SAMPLERS, locations=['mmvlg.datasets'])
TRANSFORMS = Registry('transform', parent=MMDET_TRANSFORMS, locations=['mmvlg.datasets.transforms'])

MODELS = Registry('model', parent=MMDET_MODELS, locations=['mmvlg.models'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMDET_MODEL_WRAPPERS, locations=['mmvlg.models'])
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMDET_WEIGHT_INITIALIZERS,
                               locations=['mmvlg.models'])
TASK_UTILS = Registry('task util', parent=MMDET_TASK_UTILS, locations=['mmvlg.models'])

OPTIMIZERS = Registry('optimizer', parent=MMDET_OPTIMIZERS, locations=['mmvlg.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMDET_OPTIM_WRAPPERS, locations=['mmvlg.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMDET_OPTIM_WRAPPER_CONSTRUCTORS, locations=['mmvlg.engine'])
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMDET_PARAM_SCHEDULERS,
                            locations=['mmvlg.engine'])

METRICS = Registry('metric', parent=MMDET_METRICS, locations=['mmvlg.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMDET_EVALUATOR, locations=['mmvlg.evaluation'])

VISUALIZERS = Registry('visualizer', parent=MMDET_VISUALIZERS, locations=['mmvlg.visualization'])
VISBACKENDS = Registry('vis_backend', parent=MMDET_VISBACKENDS, locations=['mmvlg.visualization'])
LOG_PROCESSORS = Registry('log_processor', parent=MMDET_LOG_PROCESSORS, locations=['mmvlg.visualization'])

INFERENCERS = Registry('inferencer', parent=MMENGINE_INFERENCERS, locations=['mmvlg.apis'])
