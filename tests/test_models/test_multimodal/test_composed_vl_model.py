"""A new vision-language model from registered parts only, no FIBER file: an image encoder, a text encoder whose
top layer cross-attends to the image tokens (X-VLM's cross encoder), ITC/ITM/MLM heads, and retrieval through
the shared protocol and RetrievalValLoop."""
from typing import Dict

import torch
from mmdet.structures import DetDataSample, SampleList
from mmdet.utils import ConfigType
from torch import Tensor

from mmvlg.models.heads import ids_tensor, itm_pairs
from mmvlg.models.multimodal.base import BaseVLModel
from mmvlg.models.multimodal.retrieval import ImageTextRetrievalMixin
from mmvlg.models.utils import mask_tokens
from mmvlg.registry import MODELS
from mmvlg.utils import register_all_modules

register_all_modules()


@MODELS.register_module(name='TinyCrossEncoderVLM', force=True)
class TinyCrossEncoderVLM(ImageTextRetrievalMixin, BaseVLModel):
    """X-VLM-shaped: text layers ``[0, fusion_layer)`` encode the text alone (ITC), layers ``[fusion_layer, L)``
    cross-attend to the image tokens (ITM on hard negatives, MLM on masked captions with a tied decoder).
    Retrieval: ITC embeddings, each query's top-k re-scored by ITM from the cached image and text tokens."""

    retrieval_cfg = dict(k=2, weight=1.0, batch_size=3)

    def __init__(self, visual: ConfigType, text_encoder: ConfigType, itc_head: ConfigType, itm_head: ConfigType,
                 mlm_head: ConfigType, fusion_layer: int, data_preprocessor=None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.visual = MODELS.build(visual)
        self.language_model = MODELS.build(text_encoder)
        self.fusion_layer = fusion_layer
        self.itc_head = MODELS.build(itc_head)
        self.itm_head = MODELS.build(itm_head)
        self.mlm_head = MODELS.build(mlm_head)
        if self.mlm_head.tie_word_embeddings:
            self.mlm_head.tie_weights(self.language_model.word_embeddings)

    def image_tokens(self, inputs: Tensor) -> Tensor:
        """(bs, N, C_i): the last feature map of the image encoder, flattened."""
        return self.visual(inputs)[-1].flatten(2).transpose(1, 2)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        lm = self.language_model
        tok = self.tokenize([ds.text for ds in data_samples], inputs.device)
        image = self.image_tokens(inputs)
        text = lm.encode(**tok, end=self.fusion_layer)
        img_emb, text_emb = self.itc_head(image, None, text['embeds'], text['mask'])
        losses, sim = self.itc_head.loss(img_emb, text_emb, ids_tensor(data_samples, device=inputs.device))
        img_idx, text_idx, labels = itm_pairs(sim, ids_tensor(data_samples, device=inputs.device))
        fused = lm.forward_layers(text['embeds'][text_idx], tok['attention_mask'][text_idx],
                                  start=self.fusion_layer, context=image[img_idx])
        losses.update(self.itm_head.loss(fused[:, 0], labels))
        tokenizer = self.tokenizer
        masked, mlm_labels = mask_tokens(tok['input_ids'], tok['attention_mask'], tokenizer.mask_token_id,
                                         tokenizer.all_special_ids, len(tokenizer))
        fused = lm.encode(masked, tok['attention_mask'], context=image)['embeds']
        losses.update(self.mlm_head.loss(fused, mlm_labels))
        return losses

    # The retrieval protocol: what is cached is exactly what the cross layers read.
    def encode_images(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        image = self.image_tokens(inputs)
        return dict(embed=self.itc_head.embed_image(image), tokens=image)

    def encode_texts(self, texts, device=None) -> Dict[str, Tensor]:
        tok = self.tokenize(texts, device)
        text = self.language_model.encode(**tok, end=self.fusion_layer)
        return dict(embed=self.itc_head.embed_text(text['embeds'], text['mask']), tokens=text['embeds'],
                    attention_mask=tok['attention_mask'])

    def score_pairs(self, image_feats: Dict[str, Tensor], text_feats: Dict[str, Tensor]) -> Tensor:
        fused = self.language_model.forward_layers(text_feats['tokens'], text_feats['attention_mask'],
                                                   start=self.fusion_layer, context=image_feats['tokens'])
        return self.itm_head.score(fused[:, 0])


def _config(vocab_size: int = 27) -> dict:
    width, img_width = 32, 64
    return dict(
        type='TinyCrossEncoderVLM', fusion_layer=1,
        visual=dict(type='ResNet', depth=18, base_channels=8, out_indices=(3, ), norm_eval=False),
        text_encoder=dict(
            type='HFTextEncoder', max_length=16, tokenizer=dict(type='word', vocab='synthref'),
            model_config=dict(model_type='bert', hidden_size=width, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64),
            cross_attention=dict(start=1, context_dims=img_width)),
        itc_head=dict(type='ITCHead', img_dims=img_width, text_dims=width, embed_dims=16,
                      pooler=dict(type='DualStreamPooler', image_pooling='mean', tanh_pooler=False,
                                  pool_first=True)),
        itm_head=dict(type='ITMHead', in_dims=width, hidden_dims=2 * width),
        mlm_head=dict(type='MLMHead', in_dims=width, vocab_size=vocab_size, tie_word_embeddings=True))


def test_composed_model_losses_and_backward():
    torch.manual_seed(0)
    model = MODELS.build(_config())
    model.init_weights()
    assert not any('fiber' in type(m).__module__.lower() for m in model.modules())
    assert model.mlm_head.decoder.weight is model.language_model.word_embeddings.weight
    texts = ['the red circle', 'the big blue square', 'the small green triangle left of the circle',
             'the red circle']
    samples = [DetDataSample(metainfo=dict(text=t, img_id=i, img_shape=(64, 64)))
               for i, t in zip([0, 1, 2, 0], texts)]  # samples 0 and 3: the same image and caption
    losses = model(torch.randn(4, 3, 64, 64), samples, mode='loss')
    assert {'loss_itc', 'loss_itm', 'acc_itm', 'loss_mlm', 'acc_mlm'} <= set(losses)
    for k in ('loss_itc', 'loss_itm', 'loss_mlm'):
        assert torch.isfinite(losses[k]) and losses[k] > 0
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    lm = model.language_model
    grads = dict(visual=model.visual.conv1.weight, cross=lm.cross_attns['1'].self.key.weight,
                 text=lm.layers[0].attention.self.query.weight, words=lm.word_embeddings.weight,
                 itm=model.itm_head.fc[0].weight, itc=model.itc_head.proj.image_proj.weight,
                 tau=model.itc_head.temperature)
    for name, p in grads.items():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_composed_model_retrieval_through_the_loop(tmp_path):
    """The same model evaluated by RetrievalValLoop: every image and text encoded once, the top-2 of each query
    re-scored by ITM from the cached tokens, Recall@K from RetrievalRecallMetric."""
    from mmengine.evaluator import Evaluator

    from mmvlg.engine.runner.retrieval_loop import RetrievalValLoop
    torch.manual_seed(0)
    model = MODELS.build(dict(_config(), data_preprocessor=dict(
        type='mmdet.DetDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])))
    model.init_weights()
    model.eval()
    texts = ['the red circle', 'the big blue square', 'the small green triangle', 'a red circle']
    img_ids = [0, 1, 2, 0]
    images = torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8)
    batches = [dict(inputs=[images[i] for i in img_ids[s:s + 2]],
                    data_samples=[DetDataSample(metainfo=dict(text=t, img_id=i, img_shape=(64, 64)))
                                  for t, i in zip(texts[s:s + 2], img_ids[s:s + 2])]) for s in (0, 2)]
    calls = []
    score_pairs = model.score_pairs
    model.score_pairs = lambda im, tx: calls.append(len(im['tokens'])) or score_pairs(im, tx)

    class Runner:
        pass

    runner = Runner()
    runner.model = model
    runner.call_hook = lambda *a, **k: None
    loop = RetrievalValLoop.__new__(RetrievalValLoop)
    loop._runner, loop.dataloader = runner, batches
    loop.evaluator = Evaluator([dict(type='RetrievalRecallMetric', topk=(1, 2))])
    metrics = loop._retrieve()
    assert set(metrics) == {'retrieval/text_R@1', 'retrieval/text_R@2', 'retrieval/image_R@1',
                            'retrieval/image_R@2', 'retrieval/R_mean'}
    # 3 images x top-2 texts + 4 texts x top-2 images = 14 fused pairs, in chunks of batch_size 3
    assert sum(calls) == 14 and max(calls) <= 3
    assert all(0 <= v <= 100 for v in metrics.values())


def test_itc_streams_embed_alone_as_together():
    """``ITCHead.embed_image``/``embed_text`` (what the retrieval protocol caches) equal ``ITCHead.forward``,
    for FIBER's pooler (project every token, then pool) and X-VLM's (pool, then project)."""
    torch.manual_seed(0)
    image, text = torch.randn(3, 5, 8), torch.randn(3, 4, 6)
    img_valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    text_valid = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    for pooler in (None, dict(type='DualStreamPooler', image_pooling='cls', tanh_pooler=False, pool_first=True),
                   dict(type='DualStreamPooler', text_pooling='mean')):
        head = MODELS.build(dict(type='ITCHead', img_dims=8, text_dims=6, embed_dims=4, pooler=pooler))
        img_emb, text_emb = head(image, img_valid, text, text_valid)
        assert torch.allclose(head.embed_image(image, img_valid), img_emb, atol=1e-6)
        assert torch.allclose(head.embed_text(text, text_valid), text_emb, atol=1e-6)
