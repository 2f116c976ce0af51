"""Tests of tools/model_converters/xvlm_to_mmvlg.py: the authors' X-VLM checkpoints in mmvlg, with outputs equal to
those of the authors' code.

How the data in ``tests/data/xvlm_converter/`` was produced. The authors' code is not part of this repository and
no script that imports or runs it is committed; it was run once, in a scratch folder outside the repository:

* Code: zengyan-97/X-VLM at commit cb4fff15bcc30bba710a7717318e6b963e6935a4 (``git archive``: ``models/``,
  ``utils/``), on CPU with torch 2.13.0 and, in a virtual environment over the system packages, transformers
  4.12.5 and timm 0.4.9 (the versions of their ``requirements.txt``).
* Patches: transformers' import-time dependency check (``dependency_versions_check.py``) reduced to ``python``
  (tokenizers 0.23 is installed, 4.12.5 asks for < 0.11; no tokenizer of theirs is run); in ``models/xvlm.py``
  the literal DeiT-B sizes of ``build_vision_encoder`` (``embed_dim=768, depth=12, num_heads=12``,
  ``local_attn_depth=4``, ``vision_width = 768``) replaced by 8, 4, 2, 2 and 8. Nothing else.
* Models, in eval mode, built by their classes from their config dicts (``use_clip_vit: False``, ``use_roberta:
  False``, ``embed_dim`` 8, ``temp`` 0.07, ``image_res`` 64) and a BERT ``config.json`` as their
  ``configs/config_bert.json`` with only the sizes reduced (``hidden_size`` 16, ``intermediate_size`` 32, 2
  heads, 12 layers, ``fusion_layer`` 6, ``max_position_embeddings`` 64, ``vocab_size`` 26 (the word vocabulary
  of ``xvlm-swin_tiny.py`` with mmvlg's five special tokens, ``[PAD]`` = 0, ``[MASK]`` = 4)):

  - ``xvlm-swin_tiny_authors.pth``: ``models/model_pretrain.XVLM`` (the 4M/16M pre-training model:
    ``BertForMaskedLM`` text encoder, ITC, ITM, MLM and box heads; ``use_swin: True``, ``patch_size`` 32) with
    a Swin configured as their ``config_swinB_224.json`` but widths 4-32, depths (2, 2, 2, 2), heads
    (1, 1, 2, 2), window 2 at 64 px (the last stage is one 2x2 window, as Swin-B's 7x7 at 224 px; the others
    shift); its initial Swin and BERT files (read by their ``build_vision_encoder`` / ``from_pretrained``) were
    their own modules' random initializations;
  - ``xvlm-vit_tiny_authors.pth``: ``models/model_retrieval.XVLM`` (the retrieval / weakly-supervised
    grounding fine-tuning model: ``BertModel`` text encoder, ITC and ITM heads; ``use_swin: False``,
    ``patch_size`` 16) with the patched DeiT ViT (width 8, 4 blocks, mixed attention in the last 2).
* Weights: after building, every parameter drawn again in ``named_parameters()`` order from
  ``torch.Generator().manual_seed(0)`` (Swin model) and ``manual_seed(1)`` (ViT model): LayerNorm weights
  1 + N(0, 0.2) and biases N(0, 0.1) (N(mean, std)), Linear/Conv weights N(0, 1 / sqrt(fan_in)), other biases
  N(0, 0.1), embeddings and relative-position bias tables N(0, 1), ``cls_token``/``pos_embed`` N(0, 0.5),
  ``temp`` 0.05;
  the MLM decoder stays tied to the word embeddings (as ``BertForMaskedLM`` ties them). Saved as their scripts
  save: ``{'model': model.state_dict(), 'config': config}``.
* ``expected_outputs.pth``: ``inputs``: two images (``image_codes``: int8 codes, the images are ``codes / 32``,
  exact in fp32; 64x64, seed 2024), two captions and three region texts tokenized by mmvlg's word tokenizer of
  that vocabulary (padded to the longest; mmvlg's ``tokenize`` gives the same ids), the captions with one word
  each replaced by ``[MASK]`` (``mlm_input_ids``), three boxes (normalized x1, y1, x2, y2, one at the image
  corner) and their images (``image_index`` 0, 0, 1). For each model (``swin``, ``vit``), in eval mode and
  without gradients: ``get_vision_embeds`` (``image_tokens``), ``get_text_embeds`` (``text_tokens``),
  ``get_features`` (``itc_image``, ``itc_text``) and their similarities divided by ``temp`` (``itc_sim``); the
  ITM logits ``itm_head(get_cross_embeds(...)[:, 0])`` of the four (image, caption) pairs ``itm_pairs``; the
  regions' ``image_atts`` from their data set's ``get_image_attns`` rule on the pixel boxes (``region_mask``),
  ``get_vision_embeds(image, image_atts, idx_to_group_img)`` (``region_tokens``: Swin the box-weighted mean
  [CLS]; ViT the region copies of mixed attention), ``get_features`` of the regions and region texts
  (``itc_region``, ``itc_region_text``), the region ITM logits (cross-attention masked by ``image_atts``:
  ``itm_region_logits``); for the pre-training model also the MLM logits of ``text_encoder(mlm_input_ids,
  encoder_hidden_states=image tokens)`` (``mlm_logits``) and ``predict_bbox`` of (full image, region text)
  (``boxes``, sigmoid cx, cy, w, h).

The largest difference between mmvlg's outputs and these was 1.2e-5 (fp32; the ITC similarities, i.e. embeddings
of error 3e-7 divided by the temperature 0.05; MLM logits 7.7e-6, image tokens 2.1e-6, ITM logits 1.7e-6, boxes
1.8e-7); the tests allow 1e-4. The supervised-grounding layout (``model_bbox.XVLM``: ``BertModel`` text encoder
and box head) is derived here from the pre-training file as the authors' ``load_pretrained(load_text=True)``
derives it (``text_encoder.bert.`` -> ``text_encoder.``, the other heads left out) and checked on the boxes.

The VQA and NLVR2 data (``*vqa*``, ``*nlvr*``, ``expected_outputs_vqa_nlvr2.pth``) were produced the same way, in
another run of the same code, virtual environment and patches, in a second scratch folder:

* BERT ``config.json`` as above but 4 layers, ``fusion_layer`` 2 (text encoder layers 0-1, cross encoder 2-3: the
  files stay small) and ``encoder_width`` 8; the patched DeiT ViT of ``xvlm-vit_tiny_authors.pth`` (``use_swin:
  False``, ``patch_size`` 16, ``image_res`` 64); config dicts as above plus, for VQA, ``pad_token_id`` 0,
  ``num_dec_layers`` 2 and ``eos`` ``'[SEP]'``.
* ``xvlm-vqa_tiny_authors.pth``: ``models/model_vqa.XVLM`` (``BertModel`` text encoder; the answer decoder
  ``text_decoder``, a ``BertLMHeadModel`` of 2 layers with cross-attention to the 16-wide question states, its
  prediction head tied to its own word embeddings), parameters drawn as above from ``manual_seed(3)``.
  ``xvlm-nlvr_tiny_authors.pth``: ``models/model_nlvr.XVLM`` (each cross layer twice, layers 2-5, the key and value
  projections of the cross-attention of layers 2k, 2k + 1 one parameter (their ``share_cross_attention``; both keys
  are in the state dict, equal); ``cls_head`` their ``build_mlp``), from ``manual_seed(4)``. The text-assignment
  model ``models/model_nlvr_pretrain.XVLM`` was built, given every tensor of the NLVR2 model but ``cls_head`` (its
  ``load_state_dict`` then misses exactly ``vision_proj`` and ``ta_head``), and those two drawn from
  ``manual_seed(5)``: ``xvlm-nlvr-ta_tiny_heads_authors.pth`` holds them (a bare state dict); the test rebuilds the
  text-assignment checkpoint as (NLVR2 state dict without ``cls_head``) + these heads, which is that model's
  ``state_dict()`` (checked against its saved file there).
* To keep the files small (< 400 KB together) the float tensors of each state dict were saved as views of one flat
  storage (``torch.save`` writes one record per storage); keys, values and the shared tensors are those of
  ``model.state_dict()``.
* ``expected_outputs_vqa_nlvr2.pth``: ``inputs``: four 64x64 images (``image_codes``, ``codes / 32``, seed 2025),
  two questions, seven candidate answers (``answers``, tokenized with the suffix ``'[SEP]'`` as their VQA script:
  ``[CLS] answer [SEP] [SEP]``), ``k`` 4, four (question, answer) training rows ``train_pairs`` and two NLVR2
  statements, tokenized by mmvlg's word tokenizer (padded to the longest). In eval mode, without gradients:
  VQA on images 0 and 1: the image tokens, the question states ``text_encoder(question, encoder_hidden_states=image
  tokens)`` (``question_states``), the first-token probabilities of every answer (softmax of the decoder's logits
  at the start token alone, at each answer's first word: ``first_probs``), the ``k`` best of them (``first_ids``)
  and their ``log p(first) - NLL(answer sequence)`` (``log_likelihood``, the sums their ``rank_answer`` ranks by),
  ``rank_answer`` itself (``rank_ids``, ``rank_probs``; equal to ``forward(train=False)``), the decoder's logits and
  per-answer losses of the training rows (``answer_logits``, ``answer_nll``: ``reduction='none'``) and
  ``forward(train=True)`` with ``k`` (2, 2) and ``weights`` (``answer_weights``) (``loss``). NLVR2 on the pairs
  (images 0, 1) and (2, 3): the image tokens and ``forward(train=False)`` on ``cat([left images, right images])``
  (``logits``); the text-assignment model: ``get_features`` of the four images (``image_embeds``) and ``ta_head``
  of the fused [CLS] of each statement over its pair (``logits``).

The largest differences: VQA decoder logits 7.6e-6 (NLL 3.8e-6, question states 8.3e-7, ranking probabilities
2.7e-7, the same ranking), NLVR2 image tokens 1.4e-6 and logits 2.4e-7, text assignment 3.6e-7.
"""
import os
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

register_all_modules()

DATA = osp.join(REPO_ROOT, 'tests', 'data', 'xvlm_converter')
KINDS = ('swin', 'vit')
TASK = dict(swin='pretrain', vit='itc_itm')
TOL = 1e-4


def load_tool():
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', 'model_converters', 'xvlm_to_mmvlg.py')
    spec = importlib.util.spec_from_file_location('_mmvlg_xvlm_to_mmvlg', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = load_tool()


def authors_checkpoint(kind: str) -> str:
    return osp.join(DATA, f'xvlm-{kind}_tiny_authors.pth')


def config_path(kind: str) -> str:
    return osp.join(DATA, f'xvlm-{kind}_tiny.py')


def build_model(kind: str, **model_overrides) -> torch.nn.Module:
    cfg = Config.fromfile(config_path(kind))
    cfg.model.update(model_overrides)
    return MODELS.build(cfg.model)


def read_authors(kind: str) -> dict:
    return torch.load(authors_checkpoint(kind), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def expected():
    return torch.load(osp.join(DATA, 'expected_outputs.pth'), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """Both tiny checkpoints converted once through the command line, and the models loaded from them."""
    out = {}
    for kind in KINDS:
        dst = str(tmp_path_factory.mktemp(kind) / 'converted.pth')
        assert tool.main([authors_checkpoint(kind), dst, '--config', config_path(kind)]) == 0
        model = build_model(kind)
        load_checkpoint(model, dst, map_location='cpu', strict=True)  # what load_from and tools/test.py do
        out[kind] = (dst, model.eval())
    return out


def close(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = float((got - want).abs().max())
    assert diff <= TOL, diff
    return diff


def tokens(model, texts, want_ids, want_mask):
    tok = model.tokenize(list(texts))
    assert torch.equal(tok['input_ids'], want_ids) and torch.equal(tok['attention_mask'], want_mask)
    return tok


@pytest.mark.parametrize('kind', KINDS)
def test_outputs_match_the_authors_code(kind, converted, expected):
    """ITC embeddings and similarities, ITM logits (image and region level), MLM logits and boxes."""
    _, model = converted[kind]
    want, inp = expected[kind], expected['inputs']
    images = inp['image_codes'].float() / 32
    with torch.no_grad():
        tok = tokens(model, inp['texts'], inp['input_ids'], inp['attention_mask'])
        image = model.vision_encoder(images)
        close(image, want['image_tokens'])
        text = model.encode_text(tok)
        close(text, want['text_tokens'])
        img_emb = model.itc_head.embed_image(image)
        text_emb = model.itc_head.embed_text(text, tok['attention_mask'].bool())
        close(img_emb, want['itc_image'])
        close(text_emb, want['itc_text'])
        close(model.itc_head.similarity(img_emb, text_emb), want['itc_sim'])
        # the retrieval protocol's caches and re-scoring (RetrievalValLoop's path)
        img_feats, text_feats = model.encode_images(images, None), model.encode_texts(inp['texts'])
        close(img_feats['embed'], want['itc_image'])
        close(text_feats['embed'], want['itc_text'])
        i, j = want['itm_pairs'].unbind(1)
        fused = model.cross_encode(text[j], tok['attention_mask'][j], image[i])
        close(model.itm_head(fused[:, 0]), want['itm_logits'])
        pair_img = {k: v[i] for k, v in img_feats.items()}
        pair_text = {k: v[j] for k, v in text_feats.items()}
        sim = (pair_img['embed'] * pair_text['embed']).sum(-1)
        close(model.score_pairs(pair_img, pair_text) + sim, want['itm_logits'][:, 1])  # ranked by the ITM logit
        if 'mlm_logits' in want:
            hidden = model.encode_text(dict(tok, input_ids=inp['mlm_input_ids']))
            close(model.mlm_head(model.cross_encode(hidden, tok['attention_mask'], image)), want['mlm_logits'])
        # regions: the box-to-patch rule, region tokens, region ITC and ITM, and boxes
        regions = model.vision_encoder.forward_regions(images, inp['boxes'], inp['image_index'])
        assert torch.equal(regions['region_mask'], want['region_mask'])
        close(regions['image'], want['image_tokens'])
        close(regions['region'], want['region_tokens'])
        rtok = tokens(model, inp['region_texts'], inp['region_input_ids'], inp['region_attention_mask'])
        rtext = model.encode_text(rtok)
        close(model.itc_head.embed_image(regions['region']), want['itc_region'])
        close(model.itc_head.embed_text(rtext, rtok['attention_mask'].bool()), want['itc_region_text'])
        fused = model.cross_encode(rtext, rtok['attention_mask'], regions['region'], regions['region_mask'])
        close(model.itm_head(fused[:, 0]), want['itm_region_logits'])
        if 'boxes' in want:
            fused = model.cross_encode(rtext, rtok['attention_mask'], image[inp['image_index']])
            close(model.bbox_head(fused[:, 0]), want['boxes'])


@pytest.mark.parametrize('kind', KINDS)
def test_every_key_is_mapped_or_dropped_with_a_reason(kind, converted):
    dst, _ = converted[kind]
    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    result = build_model(kind).load_state_dict(checkpoint['state_dict'], strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    meta = checkpoint['meta']
    assert meta['task'] == TASK[kind] and meta['weights'] == 'model' and meta['added_keys'] == []
    source = read_authors(kind)['model']
    task, mapped, dropped_pairs, unmapped = tool.map_state(source)
    assert task == TASK[kind] and unmapped == []
    used = {src for new, (src, _) in mapped.items() if new in checkpoint['state_dict']}
    dropped = {d.split(':')[0] for d in meta['dropped_keys']}
    assert all(why for _, why in dropped_pairs)
    assert len(dropped) == len(meta['dropped_keys']) and not used & dropped
    assert used | dropped == set(source)
    if kind == 'swin':
        assert dropped == {'text_encoder.bert.embeddings.position_ids', 'text_encoder.cls.predictions.decoder.bias',
                           'vision_encoder.layers.0.blocks.1.attn_mask', 'vision_encoder.layers.1.blocks.1.attn_mask',
                           'vision_encoder.layers.2.blocks.1.attn_mask'}
        assert 'vision_encoder.layers.3.blocks.1.attn.relative_position_bias_table' in used
    else:
        assert dropped == {'text_encoder.embeddings.position_ids'}


def test_pretrained_heads_are_dropped_for_a_model_without_them(tmp_path, expected):
    """The pre-training checkpoint into a model with only the box head (supervised grounding): the ITC, ITM
    and MLM heads are dropped with their reasons and the boxes are still the authors'."""
    model = build_model('swin', itc_head=None, itm_head=None, mlm_head=None)
    out = tool.convert_checkpoint(authors_checkpoint('swin'), str(tmp_path / 'out.pth'), model)
    reasons = {d.split(':')[0]: d for d in out['meta']['dropped_keys']}
    assert 'no itc_head' in reasons['vision_proj.weight'] and 'no itc_head' in reasons['temp']
    assert 'no itm_head' in reasons['itm_head.0.weight']
    assert 'no mlm_head' in reasons['text_encoder.cls.predictions.transform.dense.weight']
    assert 'text_encoder.cls.predictions.decoder.weight' in reasons  # the tied decoder: one tensor, no head


def test_bbox_layout_gives_the_authors_boxes(tmp_path, expected):
    """The supervised-grounding layout (model_bbox.XVLM), derived as the authors' load_pretrained(load_text=True)
    derives it from the pre-training checkpoint, is detected as ``bbox`` and predicts the same boxes."""
    state = read_authors('swin')['model']
    bbox = {k.replace('text_encoder.bert.', 'text_encoder.'): v for k, v in state.items()
            if k.startswith(('vision_encoder.', 'text_encoder.bert.', 'bbox_head.'))}
    assert tool.detect_task(list(bbox)) == 'bbox'
    src = str(tmp_path / 'bbox.pth')
    torch.save({'model': bbox, 'config': {}}, src)
    model = build_model('swin', itc_head=None, itm_head=None, mlm_head=None)
    out = tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), model)
    assert out['meta']['task'] == 'bbox'
    model.eval()
    inp = expected['inputs']
    with torch.no_grad():
        image = model.vision_encoder(inp['image_codes'].float() / 32)
        rtok = tokens(model, inp['region_texts'], inp['region_input_ids'], inp['region_attention_mask'])
        fused = model.cross_encode(model.encode_text(rtok), rtok['attention_mask'], image[inp['image_index']])
        close(model.bbox_head(fused[:, 0]), expected['swin']['boxes'])


def _convert_modified(tmp_path, kind: str, modify, model=None) -> dict:
    checkpoint = read_authors(kind)
    modify(checkpoint['model'])
    src = str(tmp_path / 'modified.pth')
    torch.save(checkpoint, src)
    return tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), model or build_model(kind))


def test_unknown_key_is_an_error_that_names_it(tmp_path):
    def add_unknown(state):
        state['snli_head.0.weight'] = torch.zeros(4, 16)
        state['vision_encoder.layers.0.blocks.0.attn.extra_scale'] = torch.zeros(1)
        state['text_encoder.bert.encoder.layer.3.crossattention.self.query.weight'] = torch.zeros(16, 16)
    with pytest.raises(tool.ConversionError) as err:
        _convert_modified(tmp_path, 'swin', add_unknown)
    message = str(err.value)
    assert 'snli_head.0.weight' in message and 'vision_encoder.layers.0.blocks.0.attn.extra_scale' in message
    # a cross-attention of a layer that has none in the model (layers 0-5 are the text encoder)
    assert 'layer.3.crossattention.self.query.weight -> language_model.cross_attns.3.self.query.weight' in message
    assert not osp.exists(tmp_path / 'out.pth')


def test_missing_tensor_is_an_error_that_names_it(tmp_path):
    with pytest.raises(tool.ConversionError, match=r'(?s)does not provide.*language_model\.cross_attns\.8\.self\.'
                                                   r'value\.weight'):
        _convert_modified(tmp_path, 'vit',
                          lambda s: s.pop('text_encoder.encoder.layer.8.crossattention.self.value.weight'))


def test_other_window_is_an_error_with_a_hint(tmp_path):
    """A checkpoint converted into a config of another window: the tables and their indexing differ."""
    model = build_model('swin', vision_encoder=dict(type='XVLMSwin', img_size=64, embed_dims=4, depths=(2, 2, 2, 2),
                                                    num_heads=(1, 1, 2, 2), window_size=4))
    with pytest.raises(tool.ConversionError) as err:
        tool.convert_checkpoint(authors_checkpoint('swin'), str(tmp_path / 'out.pth'), model)
    message = str(err.value)
    assert ('vision_encoder.layers.1.blocks.0.attn.relative_position_bias_table -> vision_encoder.stages.1.blocks.0.'
            'attn.w_msa.relative_position_bias_table: checkpoint (9, 1), model (49, 1)') in message
    assert 'own image size and window' in message


def test_tied_decoder_must_be_the_word_embeddings(tmp_path):
    def untie(state):
        key = 'text_encoder.cls.predictions.decoder.weight'
        state[key] = state[key] + 1
    with pytest.raises(tool.ConversionError, match=r'decoder\.weight -> mlm_head\.decoder\.weight: one tensor in '
                                                   r'the model \(tied\), different in the checkpoint'):
        _convert_modified(tmp_path, 'swin', untie)


def test_decoder_bias_must_be_the_bias(tmp_path):
    def change(state):
        state['text_encoder.cls.predictions.decoder.bias'] = state['text_encoder.cls.predictions.bias'] + 1
    with pytest.raises(tool.ConversionError, match='decoder.bias is not text_encoder.cls.predictions.bias'):
        _convert_modified(tmp_path, 'swin', change)


def test_clip_vit_checkpoint_is_an_error(tmp_path):
    with pytest.raises(tool.ConversionError, match='CLIP ViT'):
        _convert_modified(tmp_path, 'vit', lambda s: s.__setitem__('vision_encoder.pos_embed.weight',
                                                                   torch.zeros(2, 2)))


def test_captioning_checkpoint_is_an_error():
    state = {'vision_encoder.blocks.0.norm1.weight': torch.ones(8),
             'text_decoder.bert.embeddings.word_embeddings.weight': torch.zeros(4, 16)}
    with pytest.raises(tool.ConversionError, match='no X-VLM captioning model'):
        tool.map_state(state)


class _Payload:
    """Not plain data: unpickling it must be refused."""


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    from mmvlg.utils.checkpoint import UnsafeCheckpointError
    checkpoint = read_authors('vit')
    checkpoint['config'] = dict(vision=_Payload())
    src = str(tmp_path / 'unsafe.pth')
    torch.save(checkpoint, src)
    with pytest.raises(UnsafeCheckpointError, match=r'(?s)_Payload.*extract them'):
        tool.load_authors_checkpoint(src)


def test_task_detection_and_forced_task(tmp_path):
    assert tool.detect_task(list(read_authors('swin')['model'])) == 'pretrain'
    assert tool.detect_task(list(read_authors('vit')['model'])) == 'itc_itm'
    with pytest.raises(tool.ConversionError, match='cannot tell which X-VLM model'):
        tool.detect_task(['vision_encoder.blocks.0.norm1.weight'])
    # forcing the retrieval layout's rules on a pre-training file leaves its BertForMaskedLM keys unmapped
    with pytest.raises(tool.ConversionError, match=r'text_encoder\.bert\.embeddings\.word_embeddings\.weight'):
        tool.convert_state_dict(read_authors('swin')['model'], build_model('swin').state_dict(), task='itc_itm')


def test_bare_state_dict_and_module_prefix_are_read(tmp_path):
    state = read_authors('vit')['model']
    src = str(tmp_path / 'bare.pth')
    torch.save({'module.' + k: v for k, v in state.items()}, src)
    read, entry = tool.load_authors_checkpoint(src)
    assert entry == '(state dict)' and list(read) == list(state)
    torch.save({'model': {'a': torch.zeros(1), 'config': 3}}, src)
    with pytest.raises(tool.ConversionError, match='non-tensor'):
        tool.load_authors_checkpoint(src)


def test_writes_atomically(tmp_path, monkeypatch):
    """A failure while writing leaves an existing output as it was and no temporary file."""
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'previous')
    import mmvlg.utils.atomic_io as atomic_io

    def fail(*args, **kwargs):
        raise OSError('disk full')
    monkeypatch.setattr(atomic_io.os, 'replace', fail)
    with pytest.raises(OSError, match='disk full'):
        tool.convert_checkpoint(authors_checkpoint('vit'), str(dst), build_model('vit'))
    monkeypatch.undo()
    assert dst.read_bytes() == b'previous' and os.listdir(tmp_path) == ['out.pth']
    tool.convert_checkpoint(authors_checkpoint('vit'), str(dst), build_model('vit'))
    assert torch.load(dst, map_location='cpu', weights_only=True)['meta']['task'] == 'itc_itm'


def test_release_base_configs_build_the_authors_sizes():
    """The base configs describe the released (Swin-B, 224 px, window 7) and paper (DeiT-B/16) encoders with the
    heads the converter maps (the checkpoints' 768-wide BERT: ITM/box MLPs 1536 wide, ITC 256-d)."""
    for name, vision in (('xvlm_swin-b_bert-base.py', 'XVLMSwin'), ('xvlm_vit-b-16_bert-base.py', 'XVLMViT')):
        cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_', 'models', name)).model
        assert cfg.vision_encoder.type == vision and cfg.language_model.cross_attention == dict(start=6)
        assert cfg.itc_head.embed_dims == 256 and cfg.itm_head.hidden_dims == 1536
        assert cfg.bbox_head.mlp.hidden_dims == 1536 and cfg.mlm_head.tie_word_embeddings
    swin = Config.fromfile(osp.join(REPO_ROOT, 'configs', '_base_', 'models', 'xvlm_swin-b_bert-base.py'))
    assert swin.model.vision_encoder.window_size == 7 and swin.model.vision_encoder.depths == (2, 2, 18, 2)


# ------------------------------------------------------------------------------------------- VQA and NLVR2
DOWNSTREAM = dict(vqa='vqa', nlvr='nlvr2', **{'nlvr-ta': 'nlvr2'})  # data-file kind -> the converter's task


def downstream_checkpoint(kind: str, tmp_dir) -> str:
    """The authors' checkpoint of ``kind``; the text-assignment one rebuilt as the test's docstring says."""
    if kind != 'nlvr-ta':
        return authors_checkpoint(kind)
    nlvr = read_authors('nlvr')
    state = {k: v for k, v in nlvr['model'].items() if not k.startswith('cls_head.')}
    state.update(torch.load(osp.join(DATA, 'xvlm-nlvr-ta_tiny_heads_authors.pth'), map_location='cpu',
                            weights_only=True))
    path = osp.join(str(tmp_dir), 'xvlm-nlvr-ta_tiny_authors.pth')
    torch.save({'model': state, 'config': nlvr['config']}, path)
    return path


@pytest.fixture(scope='module')
def downstream_expected():
    return torch.load(osp.join(DATA, 'expected_outputs_vqa_nlvr2.pth'), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def downstream(tmp_path_factory):
    """The VQA, NLVR2 and text-assignment checkpoints converted through the command line, and the loaded models."""
    out = {}
    for kind in DOWNSTREAM:
        folder = tmp_path_factory.mktemp(kind)
        src, dst = downstream_checkpoint(kind, folder), str(folder / 'converted.pth')
        assert tool.main([src, dst, '--config', config_path(kind)]) == 0
        model = build_model(kind)
        load_checkpoint(model, dst, map_location='cpu', strict=True)
        out[kind] = (src, dst, model.eval())
    return out


def _images(inp) -> torch.Tensor:
    return inp['image_codes'].float() / 32


def test_vqa_answer_ranking_matches_the_authors_code(downstream, downstream_expected):
    """The question states, the first-token probabilities of every answer, the k candidates' log-likelihoods, the
    ranking (ids and probabilities, directly and through ``predict``) and the teacher-forced training loss."""
    _, _, model = downstream['vqa']
    want, inp = downstream_expected['vqa'], downstream_expected['inputs']
    images = _images(inp)[:2]
    k = inp['k']
    assert model.k_test == k and model.answer_suffix == inp['answer_suffix'] and model.answers == inp['answers']
    with torch.no_grad():
        close(model.vision_encoder(images), want['image_tokens'])
        tok = tokens(model, inp['questions'], inp['question_input_ids'], inp['question_attention_mask'])
        q = model.encode_questions(images, [DetDataSample(metainfo=dict(text=t)) for t in inp['questions']])
        close(q['states'], want['question_states'])
        assert torch.equal(q['mask'], tok['attention_mask'])
        ans = model.tokenize_answers(inp['answers'])
        assert torch.equal(ans['input_ids'], inp['answer_input_ids'])
        assert torch.equal(ans['attention_mask'], inp['answer_attention_mask'])
        head, ids, mask = model.answer_head, ans['input_ids'], ans['attention_mask']
        start = ids[:1, :1].expand(2, 1)
        first = head(start, torch.ones_like(start), q['states'], q['mask'])[:, 0].softmax(-1)
        close(first.index_select(1, ids[:, 1]), want['first_probs'])
        ranked = head.rank(q['states'], q['mask'], ids, mask, k)
        assert torch.equal(ranked['first_ids'], want['first_ids'])
        rows, flat = torch.arange(2).repeat_interleave(k), ranked['first_ids'].reshape(-1)
        nll = head.sequence_nll(ids[flat], mask[flat], q['states'][rows], q['mask'][rows]).view(2, k)
        close(ranked['first_probs'].log() - nll, want['log_likelihood'])
        assert torch.equal(ranked['ids'], want['rank_ids'])
        close(ranked['scores'], want['rank_probs'])
        samples = model.predict(images, [DetDataSample(metainfo=dict(text=t)) for t in inp['questions']])
        for b, ds in enumerate(samples):
            assert torch.equal(ds.pred_topk_labels, want['rank_ids'][b])
            assert ds.pred_answer == inp['answers'][int(want['rank_ids'][b, 0])]
            close(ds.pred_answer_score, want['rank_probs'][b, 0])
        # training: the decoder's logits, each answer's NLL and the weighted loss of the (question, answer) rows
        qi, ai = inp['train_pairs'].unbind(1)
        close(head(ids[ai], mask[ai], q['states'][qi], q['mask'][qi]), want['answer_logits'])
        close(head.sequence_nll(ids[ai], mask[ai], q['states'][qi], q['mask'][qi]), want['answer_nll'])
        loss = head.loss(q['states'], q['mask'], ids[ai], mask[ai], qi, want['answer_weights'])['loss_vqa']
        close(loss, want['loss'])


def test_nlvr2_logits_match_the_authors_code(downstream, downstream_expected):
    """The classifier logits of each statement over its image pair (samples 2i, 2i+1 of an NLVR2 batch)."""
    _, _, model = downstream['nlvr']
    want, inp = downstream_expected['nlvr'], downstream_expected['inputs']
    images = _images(inp)
    with torch.no_grad():
        close(model.vision_encoder(images), want['image_tokens'])
        tokens(model, inp['statements'], inp['statement_input_ids'], inp['statement_attention_mask'])
        image = model.vision_encoder(images)
        close(model.pair_logits(image[0::2], image[1::2], inp['statements']), want['logits'])
        samples = [DetDataSample(metainfo=dict(text=t, img_id=f's{i}', label=0, image_index=j))
                   for i, t in enumerate(inp['statements']) for j in (0, 1)]
        for ds, logits in zip(model.predict(images, samples), want['logits']):
            close(ds.pred_score, logits.softmax(-1))
            assert ds.pred_label == int(logits.argmax())
    # the two copies of each cross layer share their key and value projections, as the authors'
    cross = model.language_model.cross_attns
    for i in (2, 4):
        for name in ('key', 'value'):
            assert getattr(cross[str(i)].self, name) is getattr(cross[str(i + 1)].self, name)
        assert cross[str(i)].self.query is not cross[str(i + 1)].self.query


def test_nlvr2_text_assignment_matches_the_authors_code(downstream, downstream_expected):
    """The text-assignment step: the ITC image embeddings (hard negatives) and the ta_head logits; the ITC text
    projection and temperature, which the authors' model lacks and XVLMNLVRPretrain does not read, are kept."""
    _, dst, model = downstream['nlvr-ta']
    want, inp = downstream_expected['nlvr_ta'], downstream_expected['inputs']
    with torch.no_grad():
        image = model.vision_encoder(_images(inp))
        close(model.itc_head.embed_image(image), want['image_embeds'])
        close(model.pair_logits(image[0::2], image[1::2], inp['statements']), want['logits'])
    meta = torch.load(dst, map_location='cpu', weights_only=True)['meta']
    kept = {k.split(':')[0] for k in meta['kept_keys']}
    assert kept == {'itc_head.temperature', 'itc_head.proj.text_proj.weight', 'itc_head.proj.text_proj.bias'}
    assert all('XVLMNLVRPretrain reads only itc_head.embed_image' in k for k in meta['kept_keys'])


@pytest.mark.parametrize('kind', list(DOWNSTREAM))
def test_downstream_keys_are_mapped_or_dropped_with_a_reason(kind, downstream):
    src, dst, _ = downstream[kind]
    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    meta = checkpoint['meta']
    assert meta['task'] == DOWNSTREAM[kind] and meta['added_keys'] == []
    assert (meta['kept_keys'] != []) == (kind == 'nlvr-ta')
    source = tool.load_authors_checkpoint(src)[0]
    task, mapped, _, unmapped = tool.map_state(source)
    assert task == DOWNSTREAM[kind] and unmapped == []
    used = {s for new, (s, _) in mapped.items() if new in checkpoint['state_dict']}
    dropped = {d.split(':')[0] for d in meta['dropped_keys']}
    assert not used & dropped and used | dropped == set(source)
    if kind == 'vqa':
        assert dropped == {'text_encoder.embeddings.position_ids', 'text_decoder.bert.embeddings.position_ids',
                           'text_decoder.cls.predictions.decoder.bias'}
        assert mapped['answer_head.decoder.cross_attns.1.self.key.weight'][0] == \
            'text_decoder.bert.encoder.layer.1.crossattention.self.key.weight'
        assert mapped['answer_head.lm_head.norm.bias'][0] == 'text_decoder.cls.predictions.transform.LayerNorm.bias'
    else:
        assert dropped == {'text_encoder.embeddings.position_ids'}
        # the authors' layer numbering (cross layers 2-5, one copy per image) is mmvlg's
        assert mapped['language_model.cross_attns.5.self.value.weight'][0] == \
            'text_encoder.encoder.layer.5.crossattention.self.value.weight'
    if kind == 'nlvr-ta':
        assert mapped['itc_head.proj.image_proj.weight'][0] == 'vision_proj.weight'


def test_nlvr2_shared_key_value_must_be_equal(tmp_path):
    """The two copies of a cross layer share one key projection in mmvlg: different tensors in the checkpoint are
    an error naming both."""
    def untie(state):
        key = 'text_encoder.encoder.layer.5.crossattention.self.key.weight'
        state[key] = state[key] + 1
    with pytest.raises(tool.ConversionError, match=r'layer\.4\.crossattention\.self\.key\.weight -> language_model\.'
                                                   r'cross_attns\.4\.self\.key\.weight and .*layer\.5\.crossattention'
                                                   r'\.self\.key\.weight .*one tensor in the model \(tied\)'):
        _convert_modified(tmp_path, 'nlvr', untie)


def test_vqa_tied_lm_head_must_be_the_decoder_embeddings(tmp_path):
    def untie(state):
        key = 'text_decoder.cls.predictions.decoder.weight'
        state[key] = state[key] + 1
    with pytest.raises(tool.ConversionError, match=r'text_decoder\.cls\.predictions\.decoder\.weight -> answer_head\.'
                                                   r'lm_head\.decoder\.weight.*one tensor in the model \(tied\)'):
        _convert_modified(tmp_path, 'vqa', untie)

    def change_bias(state):
        state['text_decoder.cls.predictions.decoder.bias'] = state['text_decoder.cls.predictions.bias'] + 1
    with pytest.raises(tool.ConversionError, match='text_decoder.cls.predictions.decoder.bias is not'):
        _convert_modified(tmp_path, 'vqa', change_bias)


def test_vqa_decoder_of_another_depth_is_an_error(tmp_path):
    """A 2-layer answer decoder converted into a model with a 1-layer one: the extra layer is named."""
    model = build_model('vqa', answer_head=dict(type='AnswerGenerationHead', num_layers=1))
    with pytest.raises(tool.ConversionError, match=r'text_decoder\.bert\.encoder\.layer\.1\.crossattention\.self\.'
                                                   r'query\.weight -> answer_head\.decoder\.cross_attns\.1'):
        tool.convert_checkpoint(authors_checkpoint('vqa'), str(tmp_path / 'out.pth'), model)


def test_text_assignment_checkpoint_needs_its_own_config(tmp_path):
    """The text-assignment checkpoint into the NLVR2 model (no ta_head, no itc_head; a cls_head the checkpoint
    lacks): the ta_head and the missing classifier are named; vision_proj is dropped as an absent ITC head."""
    src = downstream_checkpoint('nlvr-ta', tmp_path)
    with pytest.raises(tool.ConversionError) as err:
        tool.convert_checkpoint(src, str(tmp_path / 'out.pth'), build_model('nlvr'))
    message = str(err.value)
    assert 'ta_head.weight -> ta_head.weight' in message and 'cls_head.3.bias' in message
    assert 'vision_proj' not in message


def test_downstream_task_detection():
    assert tool.detect_task(list(read_authors('vqa')['model'])) == 'vqa'
    assert tool.detect_task(list(read_authors('nlvr')['model'])) == 'nlvr2'
    assert tool.detect_task(['vision_encoder.blocks.0.norm1.weight', 'ta_head.weight']) == 'nlvr2'
