"""synthscale.report: the study report (Markdown + self-contained HTML, plots, findings table).

``write_report(study_dir)`` reads the results table and analysis.json of a study and
writes ``study_dir/report/``; ``decide_findings`` applies the documented criteria that
say which of the paper's seven findings the study reproduces (see docs/report.md).
"""

from .build import SpecSummary, write_report
from .criteria import CLAIMS, CRITERIA, NOT_REPRODUCED, NOT_TESTED, REPRODUCED, Finding
from .findings import decide_findings
from .inputs import Analysis, load_analysis, load_results, normalize_results, parse_analysis

__all__ = [
    "CLAIMS", "CRITERIA", "NOT_REPRODUCED", "NOT_TESTED", "REPRODUCED", "Analysis", "Finding", "SpecSummary",
    "decide_findings", "load_analysis", "load_results", "normalize_results", "parse_analysis", "write_report",
]
