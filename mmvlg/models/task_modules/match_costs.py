from typing import Optional

from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmengine.structures import InstanceData
from torch import Tensor

from mmvlg.registry import TASK_UTILS


@TASK_UTILS.register_module()
class SoftTokenCost(BaseMatchCost):
    """MDETR's matching cost between predicted soft-token distributions and ground-truth token maps:
    ``-softmax(logits) @ positive_map.T``.

    ``pred_instances.scores`` holds the logits (num_queries, num_tokens) and ``gt_instances.positive_maps``
    the normalized maps (num_gts, num_tokens).
    """

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        prob = pred_instances.scores.softmax(-1)
        return -(prob @ gt_instances.positive_maps.to(prob.dtype).T) * self.weight
