from .contrastive_align_loss import ContrastiveAlignLoss

__all__ = ['ContrastiveAlignLoss']
