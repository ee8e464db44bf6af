"""Corpus statistics: documents, bytes, domains (``synthscale corpus stats``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .io import ReadStats, read_documents


@dataclass
class CorpusStats:
    """Counts for one corpus source."""

    source: str
    documents: int = 0
    bytes: int = 0
    skipped: int = 0
    domains: Counter = field(default_factory=Counter)
    synthetic: int = 0
    skipped_where: list = field(default_factory=list)  # FILE:LINE of the first skipped records

    def as_dict(self) -> dict:
        """Plain-dict form for JSON output."""
        return {
            "source": self.source,
            "documents": self.documents,
            "bytes": self.bytes,
            "mean_bytes": round(self.bytes / self.documents, 1) if self.documents else 0.0,
            "skipped": self.skipped,
            "skipped_where": self.skipped_where,
            "synthetic": self.synthetic,
            "domains": dict(sorted(self.domains.items())),
        }


def corpus_stats(source: str, *, skip_bad: bool = False, text_field: str = "text",
                 id_field: str = "id") -> CorpusStats:
    """Read a corpus once and count documents, UTF-8 bytes and documents per domain."""
    stats = CorpusStats(source=str(source))
    read = ReadStats()
    for doc in read_documents(source, skip_bad=skip_bad, stats=read, text_field=text_field, id_field=id_field):
        stats.documents += 1
        stats.bytes += len(doc.text.encode("utf-8"))
        stats.domains[doc.domain or "(none)"] += 1
        stats.synthetic += doc.is_synthetic
    stats.skipped = read.skipped
    stats.skipped_where = list(read.skipped_where)
    return stats
