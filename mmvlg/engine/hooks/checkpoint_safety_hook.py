from mmengine.hooks import Hook

from mmvlg.registry import HOOKS
from mmvlg.utils.checkpoint import restore_checkpoint, sanitize_checkpoint


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Keep saved checkpoints loadable with ``torch.load(weights_only=True)`` without allow-listing
    ``builtins.getattr``.

    Configs do not need this hook: importing mmvlg makes every ``Runner`` sanitize its checkpoints right before
    pickling them (:func:`~mmvlg.utils.checkpoint.register_sanitizing_checkpoint_save`), and plain MMEngine
    checkpoints load without it. It stays registered for configs that name it (and ``tools/train.py`` still
    adds it), where it does the same work earlier, in ``before_save_checkpoint``; sanitizing twice is a no-op.

    Before saving, :func:`~mmvlg.utils.checkpoint.sanitize_checkpoint` stores the message hub's
    ``HistoryBuffer``s as plain data (pickling them would pickle their statistics functions, which loads only
    through ``getattr``) and turns numpy scalars into Python numbers. After loading,
    :func:`~mmvlg.utils.checkpoint.restore_checkpoint` turns the buffers back into ``HistoryBuffer``s before
    ``Runner.resume`` gives them to the message hub (``safe_load_checkpoint`` already does so for local
    files; this covers checkpoints read through other backends).
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Sanitize ``checkpoint`` in place.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The checkpoint about to be saved.
        """
        sanitize_checkpoint(checkpoint)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the message hub's ``HistoryBuffer``s of ``checkpoint`` in place.

        Args:
            runner (Runner): The runner.
            checkpoint (dict): The loaded checkpoint.
        """
        restore_checkpoint(checkpoint)
