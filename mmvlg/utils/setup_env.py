import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmvlg (and mmdet) module so that their registries are filled.

    Args:
        init_default_scope (bool): Whether to set the default scope to ``'mmvlg'``, so that registries
            look up mmvlg's types first (and mmdet's/mmengine's through the parents). Defaults to True.
    """
    import mmdet.utils
    mmdet.utils.register_all_modules(init_default_scope=False)

    import mmvlg.datasets  # noqa: F401
    import mmvlg.engine  # noqa: F401
    import mmvlg.evaluation  # noqa: F401
    import mmvlg.models  # noqa: F401
    import mmvlg.visualization  # noqa: F401
    if init_default_scope:
        never_created = DefaultScope.get_current_instance() is None \
            or not DefaultScope.check_instance_created('mmvlg')
        if never_created:
            DefaultScope.get_instance('mmvlg', scope_name='mmvlg')
            return
        current_scope = DefaultScope.get_current_instance()
        if current_scope.scope_name != 'mmvlg':
            warnings.warn('The current default scope '
                          f'"{current_scope.scope_name}" is not "mmvlg", '
                          '`register_all_modules` will force the current'
                          'default scope to be "mmvlg". If this is not '
                          'expected, please set `init_default_scope=False`.')
            new_instance_name = f'mmvlg-{datetime.datetime.now()}'
            DefaultScope.get_instance(new_instance_name, scope_name='mmvlg')
