"""mmvlg as an OpenMMLab package for MMEngine and mim: ``mmvlg::`` config paths and ``mmvlg/.mim``.

``setup.py`` fills ``mmvlg/.mim`` with ``configs``, ``tools``, ``demo`` and ``model-index.yml`` (symbolic links
in an editable install, copies in a wheel), where ``mim`` and MMEngine's ``Config`` look for them. Two things
MMEngine does not do on its own, done by :func:`register_mim_package` when mmvlg is imported:

- MMEngine resolves ``_base_ = 'pkg::path'`` only for the packages of its fixed ``MODULE2PACKAGE`` table, so
  mmvlg is added to it (``mmvlg::mdetr/...py`` then works in every config read after ``import mmvlg``).
- MMEngine finds a package as ``<location of its distribution>/<package>``. An editable install (PEP 660, what
  ``pip install -e .`` makes) keeps its metadata in site-packages and the code in the repository, so that path
  does not exist; for mmvlg it is taken from the imported package instead.
"""
import os.path as osp

PACKAGE = 'mmvlg'


def package_root() -> str:
    """The folder of the imported mmvlg package (the repository's ``mmvlg/`` in an editable install)."""
    return osp.dirname(osp.dirname(osp.abspath(__file__)))


def mim_root() -> str:
    """``mmvlg/.mim``: the configs, tools, demo and model index as mim and MMEngine see them."""
    return osp.join(package_root(), '.mim')


def register_mim_package() -> None:
    """Make ``mmvlg::`` config paths resolve (see the module docstring); safe to call more than once."""
    import mmengine.config.config as mmengine_config
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    default = mmengine_config.get_installed_path
    if getattr(default, 'mmvlg_aware', False):
        return

    def get_installed_path(package: str) -> str:
        if package == PACKAGE:
            return package_root()
        return default(package)

    get_installed_path.mmvlg_aware = True
    get_installed_path.__wrapped__ = default
    mmengine_config.get_installed_path = get_installed_path
