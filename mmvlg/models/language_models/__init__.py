from .hf_text_encoder import (
    FeatureResizer,
    HFTextEncoder,
    build_word_tokenizer,
    builtin_vocabularies,
    cross_attention_mask,
    read_vocab_file,
    resolve_vocab,
    self_attention_mask,
)

__all__ = ['HFTextEncoder', 'FeatureResizer', 'build_word_tokenizer', 'read_vocab_file', 'resolve_vocab',
           'builtin_vocabularies', 'self_attention_mask', 'cross_attention_mask']
