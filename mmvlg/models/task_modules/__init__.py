from .match_costs import SoftTokenCost

__all__ = ['SoftTokenCost']
