"""XVLMVQA: the weighted answer loss from the samples' labels and annotators' answers, predict for VQAAccuracy,
the answer decoder initialized from the cross encoder (at init and from a pre-training checkpoint), and a
few-iteration training of the tiny SynthRef VQA config."""
import os.path as osp

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

from mmvlg.registry import MODELS
from mmvlg.testing._utils import REPO_ROOT
from mmvlg.utils import register_all_modules

register_all_modules()

WIDTH, VIS = 32, 48
VOCAB = ['what', 'color', 'is', 'the', 'circle', '?', 'red', 'blue', 'light', 'yes', 'no', 'a', 'there']
ANSWERS = ['red', 'blue', 'light blue', 'yes', 'no']
TINY = osp.join(REPO_ROOT, 'configs', 'xvlm', 'xvlm-vqa_vit-tiny_bert-tiny_1xb32-1k_synthref-vqa.py')


def _lm():
    return dict(type='HFTextEncoder', max_length=16, tokenizer=dict(type='word', vocab=VOCAB),
                model_config=dict(model_type='bert', hidden_size=WIDTH, num_hidden_layers=4, num_attention_heads=2,
                                  intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                cross_attention=dict(start=2))


def _vision():
    return dict(type='XVLMViT', img_size=32, patch_size=8, embed_dims=VIS, depth=2, num_heads=2, local_attn_depth=1)


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='XVLMVQA', vision_encoder=_vision(), language_model=_lm(), answer_list=ANSWERS, k_test=3)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _sample(qid, question, answers=None, labels=None, scores=None):
    meta = dict(text=question, img_id=qid // 10, question_id=qid, img_shape=(32, 32), ori_shape=(32, 32))
    if answers is not None:
        meta['answers'] = answers
    if labels is not None:
        meta['answer_labels'] = labels
    if scores is not None:
        meta['answer_scores'] = scores
    return DetDataSample(metainfo=meta)


def _batch():
    return [_sample(10, 'what color is the circle?', ['red'] * 6 + ['blue'] * 3 + ['purple'], [0, 1], [1.0, 0.9]),
            _sample(20, 'is there a circle?', ['yes'] * 10, [3], [1.0])]


def test_decoder_layout_and_init_from_cross_encoder():
    model = _model()
    head = model.answer_head
    assert head.num_layers == 2 and head.context_dims == WIDTH
    lm = model.language_model
    for i in range(2):
        src, dst = lm.layers[2 + i].state_dict(), head.decoder.layers[i].state_dict()
        assert all(torch.equal(src[k], dst[k]) for k in src)
    # the visual width (48) is not the question width (32): the cross key/value start fresh, the query is copied
    assert torch.equal(head.decoder.cross_attns['0'].self.query.weight, lm.cross_attns['2'].self.query.weight)
    assert head.decoder.cross_attns['0'].self.key.weight.shape == (WIDTH, WIDTH)
    # the pre-training heads are not built
    assert model.itc_head is None and model.mlm_head is None


def test_loss_weights_count_and_score():
    model = _model()
    inputs = torch.randn(2, 3, 32, 32)
    samples = _batch()
    targets = model.answer_targets(samples)
    assert targets == [[(0, 0.6), (1, 0.3)], [(3, 1.0)]]  # the share of the annotators ("purple" is not listed)
    assert model.__class__(vision_encoder=_vision(), language_model=_lm(), answer_list=ANSWERS,
                           answer_weight='score').answer_targets(samples) == [[(0, 1.0), (1, 0.9)], [(3, 1.0)]]
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_vqa'} and losses['loss_vqa'] > 0
    # the loss is the head's weighted sum over the answers, / the number of questions
    q = model.encode_questions(inputs, samples)
    tok = model.tokenize_answers(['red', 'blue', 'yes'])
    nll = model.answer_head.sequence_nll(tok['input_ids'], tok['attention_mask'], q['states'][[0, 0, 1]],
                                         q['mask'][[0, 0, 1]])
    expected = (0.6 * nll[0] + 0.3 * nll[1] + 1.0 * nll[2]) / 2
    assert torch.allclose(losses['loss_vqa'], expected, atol=1e-5)
    losses['loss_vqa'].backward()
    assert model.answer_head.decoder.cross_attns['0'].self.key.weight.grad is not None
    vision_grads = [p.grad for p in model.vision_encoder.parameters() if p.grad is not None]
    assert vision_grads and sum(g.abs().sum() for g in vision_grads) > 0
    # a question without a listed answer counts in B but adds nothing; a batch without any: a zero loss
    empty = model.loss(inputs[:1], [_sample(30, 'what color is the circle?', ['purple'] * 10, [], [])])
    assert empty['loss_vqa'].item() == 0.0 and empty['loss_vqa'].requires_grad


def test_bad_targets():
    model = _model()
    inputs = torch.randn(1, 3, 32, 32)
    with pytest.raises(KeyError, match='question 40'):
        model.loss(inputs, [_sample(40, 'is there a circle?', answers=['yes'] * 10)])
    with pytest.raises(ValueError, match='question 41 has answer label 7 outside model.answer_list'):
        model.loss(inputs, [_sample(41, 'is there a circle?', ['yes'] * 10, [7], [1.0])])
    with pytest.raises(ValueError, match='answer_weight'):
        MODELS.build(dict(type='XVLMVQA', vision_encoder=_vision(), language_model=_lm(), answer_list=ANSWERS,
                          answer_weight='vqa'))


def test_predict_sets_the_vqa_fields():
    model = _model().eval()
    samples = _batch()
    out = model.predict(torch.randn(2, 3, 32, 32), samples)
    for ds in out:
        assert ds.pred_answer in ANSWERS
        assert ANSWERS[int(ds.pred_answer_label)] == ds.pred_answer
        assert 0 < float(ds.pred_answer_score) <= 1
        assert ds.pred_topk_labels.shape == (3, ) and int(ds.pred_topk_labels[0]) == int(ds.pred_answer_label)
    # the same ranking as the head's, on the model's question states
    q = model.encode_questions(torch.zeros(1, 3, 32, 32), samples[:1])
    tok = model.tokenize_answers(ANSWERS)
    ranked = model.answer_head.rank(q['states'], q['mask'], tok['input_ids'], tok['attention_mask'], 3)
    again = model.predict(torch.zeros(1, 3, 32, 32), [_sample(10, 'what color is the circle?')])[0]
    assert int(again.pred_answer_label) == int(ranked['ids'][0, 0])
    from mmvlg.evaluation import VQAAccuracy
    metric = VQAAccuracy()
    metric.process({}, [ds.to_dict() for ds in out])
    assert 0.0 <= metric.compute_metrics(metric.results)['accuracy'] <= 100.0


def test_answer_head_from_a_pretraining_checkpoint():
    torch.manual_seed(3)
    pre = MODELS.build(dict(type='XVLM', vision_encoder=_vision(), language_model=_lm(),
                            mlm_head=dict(type='MLMHead', tie_word_embeddings=True)))
    pre.init_weights()
    with torch.no_grad():
        for p in pre.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model = _model()
    from mmengine.runner.checkpoint import load_state_dict
    load_state_dict(model, pre.state_dict(), strict=False)
    head, lm = model.answer_head, pre.language_model
    for i in range(2):
        src, dst = lm.layers[2 + i].state_dict(), head.decoder.layers[i].state_dict()
        assert all(torch.equal(src[k], dst[k]) for k in src)
    assert torch.equal(head.decoder.word_embeddings.weight, lm.word_embeddings.weight)
    assert torch.equal(head.lm_head.dense.weight, pre.mlm_head.dense.weight)
    assert torch.equal(head.lm_head.bias, pre.mlm_head.bias)
    assert torch.equal(model.language_model.layers[3].output.dense.weight, lm.layers[3].output.dense.weight)
    # a fine-tuned checkpoint (with its own answer_head) is loaded as it is
    state = model.state_dict()
    state['answer_head.lm_head.bias'] = torch.full_like(state['answer_head.lm_head.bias'], 5.0)
    load_state_dict(model, state, strict=True)
    assert torch.all(model.answer_head.lm_head.bias == 5.0)


def test_pretraining_checkpoint_of_another_vocabulary():
    # the pre-training knows fewer words (no question words); checkpoint_vocab maps its rows onto the VQA
    # vocabulary by word, then the answer decoder copies the mapped embeddings and MLM head
    pre_vocab = ['the', 'red', 'circle', 'blue', 'a', 'left']
    torch.manual_seed(3)
    pre_lm = dict(_lm(), tokenizer=dict(type='word', vocab=pre_vocab))
    pre = MODELS.build(dict(type='XVLM', vision_encoder=_vision(), language_model=pre_lm,
                            mlm_head=dict(type='MLMHead', tie_word_embeddings=True)))
    pre.init_weights()
    with torch.no_grad():
        for p in pre.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model = _model(language_model=dict(_lm(), checkpoint_vocab=pre_vocab))
    fresh = model.language_model.word_embeddings.weight.detach().clone()
    from mmengine.runner.checkpoint import load_state_dict
    load_state_dict(model, pre.state_dict(), strict=False)
    src_tok, dst_tok = pre.language_model.tokenizer, model.language_model.tokenizer
    for word in ['[CLS]', '[SEP]', '[PAD]', 'the', 'red', 'circle', 'blue', 'a']:
        i, j = src_tok.convert_tokens_to_ids(word), dst_tok.convert_tokens_to_ids(word)
        assert torch.equal(model.language_model.word_embeddings.weight[j], pre.language_model.word_embeddings.weight[i])
        assert torch.equal(model.answer_head.decoder.word_embeddings.weight[j],
                           pre.language_model.word_embeddings.weight[i])
        assert model.answer_head.lm_head.bias[j] == pre.mlm_head.bias[i]
    for word in ['what', 'color', '?']:  # new words keep their initialization
        j = dst_tok.convert_tokens_to_ids(word)
        assert torch.equal(model.language_model.word_embeddings.weight[j], fresh[j])
    # the model's own checkpoint (its vocabulary's size) loads unchanged
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state['language_model.model.embeddings.word_embeddings.weight'].fill_(0.5)
    load_state_dict(model, state, strict=True)
    assert torch.all(model.language_model.word_embeddings.weight == 0.5)


def test_checkpoint_vocab_errors():
    with pytest.raises(ValueError, match='as many tokens'):
        MODELS.build(dict(_lm(), checkpoint_vocab=list(reversed(VOCAB))))
    with pytest.raises(ValueError, match='needs model_config'):
        MODELS.build(dict(type='HFTextEncoder', name_or_path='bert-base-uncased', checkpoint_vocab=VOCAB))


def test_tiny_config_builds():
    cfg = Config.fromfile(TINY)
    from mmvlg.datasets.synthetic.vqa import question_vocabulary, synthref_vqa_answers
    assert cfg.question_vocab == question_vocabulary()
    assert cfg.answers == synthref_vqa_answers()
    assert set(cfg.answers) <= set(cfg.vocab)
    model = MODELS.build(cfg.model)
    assert model.answer_head.num_layers == 2


@pytest.mark.slow
def test_tiny_config_trains_a_few_iterations(tmp_path):
    from mmengine.runner import Runner
    cfg = Config.fromfile(TINY)
    gen = dict(num_scenes=dict(train=24, val=8), questions_per_scene=4, image_size=64, seed=0)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = str(tmp_path / 'vqa') + '/'
        loader.dataset.generate = gen
        loader.num_workers = 0
        loader.persistent_workers = False
    cfg.train_dataloader.batch_size = 8
    cfg.val_dataloader.batch_size = 16
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg.max_iters = 4
    cfg.train_cfg.val_interval = 4
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=4)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False, interval=4)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.answer_head.state_dict().items()}
    runner.train()
    after = runner.model.answer_head.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    metrics = runner.val_loop.run()
    assert 0.0 <= metrics['vqa/accuracy'] <= 100.0


def test_reference_config_settings():
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'xvlm', 'xvlm-vqa_swin-b_bert-base_8xb24-10e_vqav2.py'))
    m = cfg.model
    assert m.type == 'XVLMVQA' and m.k_test == 128 and m.answer_head.num_layers == 6
    assert m.vision_encoder.img_size == 384 and m.vision_encoder.window_size == 12
    assert m.language_model.max_length == 40 and m.language_model.cross_attention == dict(start=6)
    assert cfg.optim_wrapper.optimizer.lr == 5e-5 and cfg.train_cfg.max_epochs == 10
    assert cfg.train_dataloader.batch_size == 24
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert len(keys) == 12 and all(v == dict(lr_mult=2.0) for v in keys.values())


def test_unlisted_answers_of_the_training_data(tmp_path):
    """An annotator's answer outside the answer list: no label (default), a counted warning, or an error naming
    the file and the question."""
    import json
    import warnings

    from mmvlg.datasets import VQAv2Dataset
    from mmvlg.datasets.validation import AnnotationError
    q = dict(data_subtype='train', questions=[dict(question_id=7, image_id=1, question='what color is it?'),
                                              dict(question_id=8, image_id=1, question='is there a circle?')])
    a = dict(annotations=[dict(question_id=7, image_id=1, answers=['red'] * 8 + ['crimson'] * 2),
                          dict(question_id=8, image_id=1, answers=['yes'] * 10)])
    (tmp_path / 'q.json').write_text(json.dumps(q))
    (tmp_path / 'a.json').write_text(json.dumps(a))
    common = dict(ann_file=str(tmp_path / 'q.json'), answer_file=str(tmp_path / 'a.json'), answer_list=ANSWERS,
                  check_images=False, serialize_data=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        data = VQAv2Dataset(**common)
    assert data.get_data_info(0)['answer_labels'] == [0]
    with pytest.warns(UserWarning, match=r"2 annotator answers of 1 questions .* question 7 has the answer 'crimson'"):
        VQAv2Dataset(unlisted_answers='warn', **common)
    with pytest.raises(AnnotationError, match=r"a.json: question 7 has the answer 'crimson'"):
        VQAv2Dataset(unlisted_answers='error', **common)
    VQAv2Dataset(unlisted_answers='error', test_mode=True, **common)  # evaluation reads every answer
    with pytest.raises(ValueError, match='unlisted_answers'):
        VQAv2Dataset(unlisted_answers='skip', **common)
