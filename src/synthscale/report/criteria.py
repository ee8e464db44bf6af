"""The paper's seven findings as this study tests them: claims, criteria, statuses, thresholds.

``CRITERIA`` is the text printed in the report and in docs/report.md; report.findings
applies it. Shared rules are in report.findings' docstring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_TESTED = "not tested by this study"

# Which synthetic kinds are rephrasings of web documents and which are generated from
# topics. A study declares each kind's style in its spec (corpora.synthetic.KIND.style),
# which reaches here as spec_summary["kind_styles"]; these names are only the fallback
# for kinds without a declared style (tables without a spec).
DEFAULT_KIND_STYLES = {"hq": "rephrase", "qa": "rephrase", "textbook": "generate", "txbk": "generate"}
RATIO_TOL = 0.01  # |r - 1/3| <= this counts as "1/3"
NOTABLE_REL = 0.01  # a loss difference is notable when it exceeds 1% of the reference loss
BEST_RATIO_BAND = (0.2, 0.4)  # "about 30%"
MIN_FIT_POINTS = 3  # E + B D^-beta has three parameters

# Trained ratios (r = 0 included) needed before the best ratio is judged (finding 4).
MIN_RATIOS = 5

CLAIMS = {
    1: "Rephrased data alone (r=1) is not faster than natural web text.",
    2: "1/3 rephrased + 2/3 natural reaches the same loss faster (paper: 5-10x at larger budgets).",
    3: "Textbook data alone gives notably higher loss on many domains, worst at small budgets.",
    4: "Best ratios depend on size and budget; for rephrased data they converge to about 30%.",
    5: "The 1/3 HQ mixture has the lowest fitted irreducible loss E.",
    6: "Generators bigger than ~8B do not give better pre-training data.",
    7: "Single-round collapse: rephrased mixtures do not degrade; textbook mixtures do.",
}

CRITERIA = {
    1: "For every rephrased recipe (kinds of style rephrase) at r=1 and every model: the speedup over natural "
       "at the largest trained (not extrapolated) budget is <= 1, or its 95% CI includes 1 (a '> x' bound "
       "above 1 fails). Speedups come only from usable (ok or weak) laws: a recipe whose law or natural's "
       "is unusable is not tested, with the reason. Not tested when analysis.json has no such speedup.",
    2: "For every rephrased recipe at r=1/3 and every model: the speedup at the largest trained "
       "budget is > 1 and the lower end of its 95% CI is > 1 (no CI: not reproduced). "
       "The measured factor is reported next to the paper's 5-10x, which is at billions of tokens. "
       "A '> x' bound counts as its value. Not tested when analysis.json has no such speedup from usable laws.",
    3: f"For every textbook recipe at r=1 and every model, against natural at the budgets both "
       f"trained (at least two): at the smallest budget the textbook loss is more than "
       f"{NOTABLE_REL:.0%} above natural's on more than half of the eval domains, and the relative "
       f"gap of the mean-domain loss is larger at the smallest budget than at the largest. "
       f"Not tested without a textbook r=1 recipe and natural on two shared budgets.",
    4: f"For each rephrased kind with at least {MIN_RATIOS} ratios (natural counts as r=0; fewer cannot locate "
       f"an optimum near 30% rather than merely pick the one ratio near it), at the largest "
       f"model and its largest budget: the best trained ratio (analysis ratio_grid, else the argmin "
       f"over the results table) lies in [{BEST_RATIO_BAND[0]:g}, {BEST_RATIO_BAND[1]:g}]. The paper "
       f"searched a grid, so the grid decides; the ratio law's fitted r* is shown as evidence. "
       f"Not tested when no rephrased kind has {MIN_RATIOS} ratios.",
    5: f"For every model: among usable (ok or weak) E + B*D^-beta fits with at least {MIN_FIT_POINTS} points "
       f"whose E is determined (not at its lower bound, its 95% interval within the verdict's decade limit), "
       f"the lowest point estimate of E among the rephrased recipes at r=1/3 (the paper's HQ; any kind of "
       f"style rephrase, e.g. hq, qa or a kind declared `style: rephrase`) is strictly lower than every other "
       f"fit's E (overlapping CIs are reported); with several generators, each generator's best "
       f"rephrased@1/3 fit is compared. Not tested without a usable rephrased@1/3 fit and one other fit.",
    6: f"For each (model, kind, ratio) trained with 2 or more generators of known size (from "
       f"spec_summary['generator_params'] or a size such as '8B'/'135M' in the name): at the largest "
       f"budget all of them trained, the largest generator's loss is not more than {NOTABLE_REL:.0%} "
       f"below the best smaller generator's. The paper's 8B threshold is read as 'the largest "
       f"generator in the study'. Not tested with fewer than 2 generators.",
    7: f"Needs a `round` column with 2 or more rounds. Comparing the last round with the first at "
       f"the largest shared budget: every rephrased mixture's loss rises by at most {NOTABLE_REL:.0%} "
       f"(no degradation) and every textbook mixture's loss rises by more than {NOTABLE_REL:.0%} "
       f"(collapse). Not tested without both a rephrased and a textbook recipe over rounds.",
}


@dataclass(frozen=True)
class Finding:
    """One row of the findings table."""

    number: int
    claim: str
    status: str
    evidence: str
    criterion: str

    def to_dict(self) -> dict:
        """A JSON-ready dict of this finding."""
        return asdict(self)
