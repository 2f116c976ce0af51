from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from mmvlg.registry import HOOKS
from mmvlg.utils.checkpoint_keys import check_checkpoint_keys


@HOOKS.register_module()
class CheckpointKeysHook(Hook):
    """Stop a test (or a resume) whose checkpoint does not fit the model, and say loudly what ``load_from`` did
    not load.

    MMEngine's ``Runner.load_checkpoint`` loads with ``strict=False`` and only logs the keys it could not
    load, so ``tools/test.py`` with a checkpoint of another architecture evaluates a mostly random model.
    Right after the runner read a checkpoint (``after_load_checkpoint``, before the weights go into the
    model), this hook compares its ``state_dict`` with the model's (see
    :func:`mmvlg.utils.checkpoint_keys.check_checkpoint_keys`): model keys missing from it or with another
    shape, and checkpoint keys the model lacks. Outside the allow-lists:

    * testing or validating (``Runner.test``/``val``: ``tools/test.py``), and resuming: a
      :class:`~mmvlg.utils.checkpoint_keys.CheckpointKeysError` that lists the keys (the first
      ``max_listed`` of each kind and their count) and names the checkpoint;
    * training from ``load_from`` (fine-tuning): a WARNING banner listing what was not loaded.

    A checkpoint that fills none of the model's weights is an error in every mode. ``tools/train.py`` and
    ``tools/test.py`` add this hook with its defaults when the config has none; add it yourself to allow
    keys:

    .. code-block:: python

        custom_hooks = [
            dict(type='SafeCheckpointHook'),
            # a fresh box head: its weights may be missing (or have another shape) in the checkpoint,
            # and the checkpoint's auxiliary decoder is not part of this model
            dict(type='CheckpointKeysHook', allow_missing=[r'^bbox_head\\.'], allow_unexpected=[r'^aux_']),
        ]

    ``GroundingInferencer`` checks its weights the same way (always as an error) with the allow-lists of
    this hook's entry in its config.

    When resuming, a legacy ``meta['config']`` of the checkpoint (which ``Runner.resume`` would execute with
    ``Config.fromstring``) must be literal data (:func:`mmvlg.utils.safe_config.literal_config_dict`).

    Args:
        allow_missing (list[str]): Regular expressions (:func:`re.search`) of model keys that may be missing
            from the checkpoint or have another shape there. Defaults to none.
        allow_unexpected (list[str]): Regular expressions of checkpoint keys the model may lack. Defaults to
            none.
        on_mismatch (str): ``'auto'`` (error when testing, validating or resuming; warning when training
            from ``load_from``), ``'error'`` or ``'warn'``. Defaults to ``'auto'``.
        max_listed (int): Keys listed per kind in the messages. Defaults to 20.
    """

    # After the hooks that edit the loaded checkpoint (EMAHook, SafeCheckpointHook, ...).
    priority = 'LOWEST'

    def __init__(self,
                 allow_missing: Sequence[str] = (),
                 allow_unexpected: Sequence[str] = (),
                 on_mismatch: str = 'auto',
                 max_listed: int = 20) -> None:
        for name, patterns in (('allow_missing', allow_missing), ('allow_unexpected', allow_unexpected)):
            if isinstance(patterns, str):
                raise TypeError(f'CheckpointKeysHook: {name} must be a list of regular expressions, got the '
                                f'string {patterns!r}; write [{patterns!r}]')
        if on_mismatch not in ('auto', 'error', 'warn'):
            raise ValueError(f"CheckpointKeysHook: on_mismatch must be 'auto', 'error' or 'warn', got {on_mismatch!r}")
        self.allow_missing = list(allow_missing)
        self.allow_unexpected = list(allow_unexpected)
        self.on_mismatch = on_mismatch
        self.max_listed = max_listed

    @staticmethod
    def _filename(runner) -> Optional[str]:
        filename = getattr(runner, '_load_from', None)
        if filename is None and getattr(runner, '_resume', False):
            from mmengine.runner import find_latest_checkpoint
            filename = find_latest_checkpoint(runner.work_dir)
        return filename

    def mode(self, runner) -> str:
        """``'error'`` or ``'warn'`` for this load (see the class docstring)."""
        if self.on_mismatch != 'auto':
            return self.on_mismatch
        if getattr(runner, '_resume', False):
            return 'error'
        # Runner.train builds its loop before it loads the checkpoint; test/val leave it unbuilt.
        return 'warn' if isinstance(getattr(runner, '_train_loop', None), BaseLoop) else 'error'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check the checkpoint's keys against the model's before the runner loads it.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The loaded checkpoint.
        """
        filename = self._filename(runner)
        if getattr(runner, '_resume', False) and isinstance(checkpoint, dict):
            config = (checkpoint.get('meta') or {}).get('config')
            if isinstance(config, str):
                from mmvlg.utils.safe_config import literal_config_dict
                literal_config_dict(config, source=f"of checkpoint {filename!r} (meta['config'])")
        check_checkpoint_keys(runner.model, checkpoint, filename=filename, allow_missing=self.allow_missing,
                              allow_unexpected=self.allow_unexpected, on_mismatch=self.mode(runner),
                              max_listed=self.max_listed, logger=runner.logger)
