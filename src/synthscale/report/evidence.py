"""The evidence behind a finding: what the criteria read and how the evidence text reads.

``Context`` holds the study's results and analysis; the helpers look up losses and
budgets, name budgets with the study's regime (tokens per parameter), and turn the
pass/fail of each condition into a status and an evidence sentence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from . import fmt
from .criteria import NOT_REPRODUCED, NOT_TESTED, RATIO_TOL, REPRODUCED
from .inputs import Analysis, ordered_models

# The paper's regime (PROTOCOL.md): its 1B model trained on 1B-200B tokens, 1 to 200 tokens
# per non-embedding parameter; compute-optimal (Chinchilla) is about 20. A miniature far
# outside it measures another stretch of training, so the report states the study's.
PAPER_TOKENS_PER_PARAM = (1, 200)
COMPUTE_OPTIMAL_TOKENS_PER_PARAM = 20
REGIME_FINDINGS = (1, 2, 3, 4, 5)  # findings read off budgets and laws: their evidence states the regime


def tokens_per_param(results: pd.DataFrame, model: str, tokens: float) -> float | None:
    """D/N: training tokens per non-embedding parameter of ``model`` (None when N is unknown)."""
    n = pd.to_numeric(results.loc[results["model"] == model, "params_nonembedding"], errors="coerce").dropna()
    return float(tokens) / float(n.iloc[0]) if len(n) and float(n.iloc[0]) > 0 else None


def regime_text(results: pd.DataFrame) -> str:
    """The study's tokens per non-embedding parameter per model next to the paper's range
    ('' when the table has no non-embedding parameter counts)."""
    spans = []
    for model in ordered_models(results):
        budgets = results.loc[results["model"] == model, "tokens"]
        low, high = tokens_per_param(results, model, budgets.min()), tokens_per_param(results, model, budgets.max())
        if low is not None:
            spans.append(f"{fmt.per_param(low)}-{fmt.per_param(high)} ({model})")
    if not spans:
        return ""
    return (f"tokens per non-embedding parameter D/N = {', '.join(spans)}; the paper's runs span "
            f"{PAPER_TOKENS_PER_PARAM[0]}-{PAPER_TOKENS_PER_PARAM[1]}, compute-optimal is about "
            f"{COMPUTE_OPTIMAL_TOKENS_PER_PARAM}")


@dataclass
class Context:
    """What the criteria read: results, analysis, kind styles and generator sizes, models in size order."""

    results: pd.DataFrame
    analysis: Analysis
    kind_styles: dict[str, str]
    generator_params: dict[str, float]
    models: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.models = ordered_models(self.results)

    def model_rank(self, model: str) -> int:
        """Position of ``model`` among the study's sizes, smallest first (for reading order)."""
        return self.models.index(model) if model in self.models else len(self.models)

    def at(self, model: str, tokens: float) -> str:
        """A budget as the evidence names it: '2.05M (D/N 20.8)' (D/N when N is known)."""
        dn = tokens_per_param(self.results, model, tokens)
        return fmt.tokens(tokens) + (f" (D/N {fmt.per_param(dn)})" if dn is not None else "")

    def style_of(self, kind: str) -> str | None:
        """'rephrase' or 'generate' when every component of ``kind`` has that style, else None."""
        styles = {self.kind_styles.get(k) for k in kind.split("+")}
        return styles.pop() if len(styles) == 1 else None

    def base_round(self) -> pd.DataFrame:
        """The results of the first collapse round only (the whole table without rounds)."""
        return self.results[self.results["round"] == self.results["round"].min()]


def near(value: float, target: float) -> bool:
    """Whether a ratio is ``target`` within RATIO_TOL (None is not)."""
    return value is not None and abs(float(value) - target) <= RATIO_TOL


def shared_budgets(losses: pd.DataFrame, model: str, labels: Iterable[str]) -> list[float]:
    """The budgets every one of ``labels`` trained on ``model``, smallest first."""
    sets = [set(losses.loc[(losses["model"] == model) & (losses["label"] == lab), "tokens"]) for lab in labels]
    return sorted(set.intersection(*sets)) if sets else []


def loss_at(losses: pd.DataFrame, model: str, label: str, tokens: float) -> float:
    """The loss of one condition at one budget (nan when it was not trained)."""
    row = losses[(losses["model"] == model) & (losses["label"] == label) & (losses["tokens"] == tokens)]
    return float(row["loss"].iloc[0]) if len(row) else math.nan


def verdict_with_untested(verdicts: list[bool], notes: list[str], untested: list[str],
                           none: str) -> tuple[str, str]:
    """As ``verdict``, for conditions some of which could not be checked (no usable law):
    one failing condition is enough to say not reproduced; otherwise an unchecked one makes
    the finding not tested, with its reason."""
    if verdicts and not all(verdicts):
        return NOT_REPRODUCED, join_notes(notes + [f"not tested: {u}" for u in untested])
    if untested:
        return NOT_TESTED, join_notes([f"not tested: {u}" for u in untested] + notes)
    return verdict(verdicts, notes, none)


def verdict(verdicts: list[bool], notes: list[str], untested: str) -> tuple[str, str]:
    """Reproduced when every condition passed; not tested when none could be checked."""
    if not verdicts:
        return NOT_TESTED, join_notes(notes) or untested
    return (REPRODUCED if all(verdicts) else NOT_REPRODUCED), join_notes(notes)


def join_notes(notes: list[str]) -> str:
    """Notes as one evidence sentence."""
    return "; ".join(notes) + ("." if notes else "")
