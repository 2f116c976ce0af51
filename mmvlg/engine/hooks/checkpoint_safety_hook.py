from mmengine.hooks import Hook

from mmvlg.registry import HOOKS
from mmvlg.utils.checkpoint import sanitize_checkpoint


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Keep saved checkpoints loadable with ``torch.load(weights_only=True)``: numpy scalars that other
    hooks or the message hub put into the checkpoint are turned into Python numbers before saving."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        sanitize_checkpoint(checkpoint)
