"""Diagnostics stage: corpus statistics and collapse signals (docs/diagnostics.md).

Downstream of corpus/ and tokens/ only. ``compare_corpora(A, B)`` measures how a corpus B
(synthetic) relates to a corpus A (natural) through one shared tokenizer;
``study.study_diagnostics`` does it for every synthetic kind of a study
(``STUDY/diagnostics.json``); ``reference`` holds the figures of real corpora.
"""

from .compare import (COMPARE_FORMAT, DEFAULT_DIVERSITY_TOKENS, DEFAULT_VOCAB_SIZE, PAIR_MODES, SMOOTHING,
                      CorpusRef, CorpusSample, Tokenized, compare_corpora, compare_tokenized, format_comparison,
                      read_sample, shared_tokenizer, tokenize)
from .metrics import (NEAR_COPY, distinct_n, gzip_ratio, pair_overlap, trigram_jaccard, type_token_ratio,
                      unigram_counts, unigram_kl, unseen_mass)

__all__ = [
    "compare_corpora", "compare_tokenized", "format_comparison", "CorpusRef", "CorpusSample", "Tokenized",
    "read_sample", "tokenize", "shared_tokenizer", "COMPARE_FORMAT", "DEFAULT_VOCAB_SIZE",
    "DEFAULT_DIVERSITY_TOKENS", "PAIR_MODES", "SMOOTHING", "NEAR_COPY", "unigram_counts", "unigram_kl",
    "unseen_mass", "type_token_ratio", "distinct_n", "gzip_ratio", "pair_overlap", "trigram_jaccard",
]
