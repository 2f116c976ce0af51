"""Write the tiny checkpoints of the authors' SOHO code and their outputs that tests/test_tools/test_soho_converter.py
compares mmvlg with (run once, by hand; the test suite never runs it).

The authors' code (researchmm/soho) is not part of this repository; this script imports it from a scratch folder
outside it, made from the authors' repository with::

    mkdir /tmp/soho_authors && cd /tmp/soho_authors
    git --git-dir=<soho repository> archive 95824a8 SOHO commons | tar x
    echo "__version__ = '0'; short_version = '0'" > SOHO/version.py   # written by their setup.py
    mkdir -p stubs/apex && echo "amp = None" > stubs/apex/__init__.py  # imported by their runner; unused here

and then, from the mmvlg repository root::

    python tests/data/soho_converter/make_authors_data.py /tmp/soho_authors tests/data/soho_converter

It builds their ``SOHOSingleStreamPre`` and ``SOHOSingleStreamVQA`` with their builders from config dicts that are
their ``configs/Pretrain/soho_res18_pre.py`` / ``configs/VQA/soho_res18_vqa.py`` with only the sizes reduced (and
``BN`` for the necks' ``SyncBN``, which needs a process group), draws every tensor again, saves the state dicts as
their runner's ``save_checkpoint`` does (``{'meta': ..., 'state_dict': ...}``), and runs their modules in eval mode,
without gradients, on fixed inputs, in the order of their ``forward_train`` (backbone once per image, features
repeated per text; neck; ``VLBertModel`` over text + visual tokens; ``mask_l_fc``, the cosine to ``vq.embed``,
``head``). See the test's docstring for what each saved tensor is.
"""
import json
import math
import os.path as osp
import sys

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------- sizes
VOCAB = ['a', 'the', 'red', 'blue', 'green', 'small', 'big', 'circle', 'square', 'triangle', 'left', 'right',
         'of', 'above', 'below', 'and', 'next', 'to', 'what', 'color', 'is', 'how', 'many', 'two',
         'triangles', 'squares']
WIDTH, LAYERS, HEADS, ENTRIES, ANSWERS = 16, 3, 2, 32, 7
BACKBONE = dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ), frozen_stages=1, style='pytorch',
                stem_channels=4, base_channels=4, strides=(1, 2, 2, 1))
IMAGE, PADDED = 128, (96, 80)  # image 1 is 96 x 80 inside the 128 x 128 batch


def language_cfg(vocab_size):
    return dict(type='VLBertModel', vocab_size=vocab_size, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                num_attention_heads=HEADS, intermediate_size=2 * WIDTH, max_position_embeddings=64)


def redraw(model: torch.nn.Module, seed: int) -> None:
    """Every tensor of the state dict drawn again (norms and BatchNorm statistics too), in state-dict order."""
    g = torch.Generator().manual_seed(seed)

    def normal(shape, std=1.0, mean=0.0):
        return torch.randn(shape, generator=g) * std + mean

    seen = set()
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if id(t) in seen:  # mask_l_fc.weight is the word-embedding matrix
                continue
            seen.add(id(t))
            leaf = name.rsplit('.', 1)[-1]
            if leaf == 'num_batches_tracked':
                t.fill_(int(torch.randint(1, 1000, (), generator=g)))
            elif leaf == 'running_var':
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif leaf == 'running_mean':
                t.copy_(normal(t.shape, 0.1))
            elif name.endswith('vq.embed'):
                t.copy_(normal(t.shape))
            elif name.endswith(('vq.cluster_size', 'vq.cluster_sum')):
                t.copy_(torch.rand(t.shape, generator=g) * 10)
            elif name.endswith('vq.embed_avg'):
                t.copy_(normal(t.shape))
            elif t.dim() == 1 and leaf == 'weight':  # LayerNorm / BatchNorm
                t.copy_(normal(t.shape, 0.2, 1.0))
            elif leaf == 'bias':
                t.copy_(normal(t.shape, 0.1))
            elif 'embeddings' in name or 'mask_emb' in name:
                t.copy_(normal(t.shape))
            else:  # Linear / Conv weights
                t.copy_(normal(t.shape, 1.0 / math.sqrt(t[0].numel())))


def flat_state(state: dict) -> dict:
    """The float tensors as views of one storage (one record in the file), shared tensors kept shared."""
    floats = [(k, v) for k, v in state.items() if v.is_floating_point()]
    unique = {}
    for k, v in floats:
        unique.setdefault((v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape)), []).append(k)
    flat = torch.cat([state[ks[0]].reshape(-1) for ks in unique.values()])
    out, offset = dict(state), 0
    for ks in unique.values():
        v = state[ks[0]]
        view = flat[offset:offset + v.numel()].view(v.shape)
        offset += v.numel()
        for k in ks:
            out[k] = view
    return {k: out[k] for k in state}


def main(authors: str, out_dir: str) -> None:
    sys.path[:0] = [authors, osp.join(authors, 'stubs')]
    from SOHO.models.builder import build_model

    from mmvlg.models.language_models import HFTextEncoder

    lm = HFTextEncoder(tokenizer=dict(type='word', vocab=VOCAB), max_length=40,
                       model_config=dict(model_type='bert', hidden_size=WIDTH, num_hidden_layers=LAYERS,
                                         num_attention_heads=HEADS, intermediate_size=2 * WIDTH,
                                         max_position_embeddings=64))
    vocab_size = len(lm.tokenizer)
    mask_id = lm.tokenizer.mask_token_id

    pre = build_model(dict(
        type='SOHOSingleStreamPre', backbone=BACKBONE, language=language_cfg(vocab_size),
        neck=dict(type='SimpleVDforPreGate', in_channels=32, out_channels=WIDTH, num_tokens=ENTRIES, decay=0.4,
                  mask_prob=1.0, norm_cfg=dict(type='BN')),  # mask_prob 1: the chosen entry is always masked
        head=dict(type='MLM_MVM_ITM_head', hidden_size=WIDTH)))
    vqa = build_model(dict(
        type='SOHOSingleStreamVQA', backbone=BACKBONE, language=language_cfg(vocab_size),
        neck=dict(type='SimpleVDforVQA', in_channels=32, out_channels=WIDTH, num_tokens=ENTRIES,
                  norm_cfg=dict(type='BN')),
        head=dict(type='SOHO_DownStream_VQA_head', hidden_size=WIDTH, num_answes=ANSWERS)))
    redraw(pre, 0)
    redraw(vqa, 1)
    pre.eval()
    vqa.eval()
    assert pre.mask_l_fc.weight is pre.language.bert.embeddings.word_embeddings.weight
    for name, model in (('pre', pre), ('vqa', vqa)):
        meta = dict(torch_version=str(torch.__version__), time='tiny random weights', epoch=40, iter=0)
        torch.save(dict(meta=meta, state_dict=flat_state(model.state_dict())),
                   osp.join(out_dir, f'soho-{name}_tiny_authors.pth'))

    # ------------------------------------------------------------------------------------------ inputs
    g = torch.Generator().manual_seed(2026)
    codes = torch.randint(-64, 64, (2, 3, IMAGE, IMAGE), generator=g, dtype=torch.int8)
    codes[1, :, PADDED[0]:] = 0
    codes[1, :, :, PADDED[1]:] = 0
    images = codes.float() / 32
    img_meta = [dict(img_shape=(IMAGE, IMAGE, 3), pad_shape=(IMAGE, IMAGE, 3)),
                dict(img_shape=(*PADDED, 3), pad_shape=(IMAGE, IMAGE, 3))]
    texts = ['a red circle left of the blue square', 'two small triangles', 'the big green square',
             'a circle above a triangle and next to the square']
    tok = lm.tokenize(texts)
    ids, att = tok['input_ids'], tok['attention_mask']
    mlm_ids = ids.clone()
    for row, pos in ((0, 2), (1, 3), (2, 1), (3, 5)):
        mlm_ids[row, pos] = mask_id
    questions = ['what color is the circle', 'how many squares']
    qtok = lm.tokenize(questions)
    inputs = dict(image_codes=codes, img_shapes=torch.tensor([[IMAGE, IMAGE], list(PADDED)]), texts=texts,
                  input_ids=ids, attention_mask=att, mlm_input_ids=mlm_ids, pair_image=torch.tensor([0, 0, 1, 1]),
                  questions=questions, question_input_ids=qtok['input_ids'],
                  question_attention_mask=qtok['attention_mask'])

    out = dict(inputs=inputs)
    with torch.no_grad():
        # pre-training: forward_train's path up to the logits
        found = []
        hook = pre.neck.vq.register_forward_hook(lambda m, i, o: found.append((i[0], o[1])))
        feats = pre.backbone(images)
        feats = [f[inputs['pair_image']] for f in feats]
        # the neck draws one token position for the batch (np.random) whose entry it masks in every pair
        np.random.seed(1)
        visual, visual_att, mvm_labels = pre.neck(feats, img_meta)
        hook.remove()
        (dict_inputs, indices), = found
        dist = torch.cdist(dict_inputs, pre.neck.vq.embed)
        two = dist.topk(2, largest=False).values ** 2
        fused = pre.language(mlm_ids, att, visual_tokens=visual, visual_attention_mask=visual_att)
        length = ids.shape[1]
        mlm_logits = pre.mask_l_fc(fused)[:, :length]
        v = torch.nn.functional.normalize(fused[:, length:], dim=-1)
        mvm_scores = v @ torch.nn.functional.normalize(pre.neck.vq.embed, dim=-1).t()
        itm_logits = pre.head(fused)
        n = visual.shape[1]
        out['pre'] = dict(dict_inputs=dict_inputs.view(4, n, WIDTH), indices=indices.view(4, n),
                          visual_tokens=visual, visual_mask=visual_att, mvm_labels=mvm_labels, fused=fused,
                          mlm_logits=mlm_logits, mvm_scores=mvm_scores, itm_logits=itm_logits)
        # VQA: one question per image
        vfeats = vqa.backbone(images)
        vvisual, vatt = vqa.neck(vfeats, img_meta)
        vfused = vqa.language(qtok['input_ids'], qtok['attention_mask'], visual_tokens=vvisual,
                              visual_attention_mask=vatt)
        out['vqa'] = dict(visual_tokens=vvisual, visual_mask=vatt, fused=vfused, logits=vqa.head(vfused))
    print('nearest-entry margin (smallest gap between the two nearest squared distances):',
          float((two[:, 1] - two[:, 0]).min()))
    print('MVM labels per pair:', [sorted(set(r[r >= 0].tolist())) for r in mvm_labels])
    torch.save(out, osp.join(out_dir, 'expected_outputs.pth'))

    # the released models' own sizes (configs/Pretrain/soho_res18_pre.py, configs/VQA/soho_res18_vqa.py; BN for
    # SyncBN, the same keys): the key -> shape list of their state dicts
    released = {}
    for name, neck, head in (
            ('pretrain', dict(type='SimpleVDforPreGate', in_channels=512, out_channels=768, num_tokens=2048,
                              decay=0.4, mask_prob=0.015, norm_cfg=dict(type='BN')),
             dict(type='MLM_MVM_ITM_head', hidden_size=768)),
            ('vqa', dict(type='SimpleVDforVQA', in_channels=512, out_channels=768, num_tokens=2048,
                         norm_cfg=dict(type='BN')),
             dict(type='SOHO_DownStream_VQA_head', hidden_size=768))):
        model = build_model(dict(
            type='SOHOSingleStreamPre' if name == 'pretrain' else 'SOHOSingleStreamVQA',
            backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ), frozen_stages=1,
                          style='pytorch'),
            language=dict(type='VLBertModel', num_hidden_layers=3), neck=neck, head=head))
        released[name] = {k: list(v.shape) for k, v in model.state_dict().items()}
    with open(osp.join(out_dir, 'released_keys.json'), 'w') as f:
        json.dump(released, f, indent=0)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
