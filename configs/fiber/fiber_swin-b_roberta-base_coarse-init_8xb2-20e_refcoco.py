# Coarse-to-fine (arXiv:2206.07643, section 3.2): the RefCOCO grounding detector initialized from a FIBER
# coarse-grained checkpoint. Every backbone parameter (Swin, RoBERTa and the gated cross-attentions) comes from the
# coarse model; the FPN, the DyHead and the ATSS grounding head start fresh, and the coarse-only parts (ITC/ITM/MLM
# heads, poolers) are ignored. The Swin LayerNorms of stages 2-3 (norm1, norm2: the coarse model only reads stage
# 4) start fresh as well. (The paper runs fine-grained pre-training between the two; this config goes straight to
# the downstream task.)
_base_ = './fiber_swin-b_roberta-base_8xb2-20e_refcoco.py'
coarse_checkpoint = 'work_dirs/fiber-coarse_swin-b_roberta-base_64xb64-100k_coco-vg-sbu-cc/iter_100000.pth'
model = dict(
    backbone=dict(
        visual_checkpoint=None,  # the Swin comes from the coarse checkpoint
        init_cfg=dict(type='Pretrained', checkpoint=coarse_checkpoint, prefix='backbone.')))
