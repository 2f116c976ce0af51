from .hf_text_encoder import FeatureResizer, HFTextEncoder, build_word_tokenizer, read_vocab_file

__all__ = ['HFTextEncoder', 'FeatureResizer', 'build_word_tokenizer', 'read_vocab_file']
