"""Corpus stage: the Document record and its readers/writers."""

from .document import PROVENANCE_FIELDS, Document
from .io import ReadStats, corpus_fingerprint, corpus_format, open_text, parse_hf_uri, read_documents, write_documents
from .stats import CorpusStats, corpus_stats

__all__ = [
    "corpus_fingerprint",
    "Document", "PROVENANCE_FIELDS", "ReadStats", "read_documents", "write_documents",
    "corpus_format", "open_text", "parse_hf_uri", "CorpusStats", "corpus_stats",
]
