"""Baselines in the report: each eval domain's uniform and unigram loss, and what they say.

The study's prepare step writes ``STUDY/baselines.json`` (synthscale.evaluate.baselines,
docs/contracts.md). The report lists the baselines per domain, adds them as rows under
the per-domain loss tables, and says plainly, in the findings section, when the final
losses (each model and recipe at its largest budget, seed mean) do not beat the unigram
baseline of a domain (the models learned little beyond token frequencies) or lie above
the uniform one (worse than a uniform guess). Without the file (older study folders,
tables given in memory) the report says nothing about baselines.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..errors import InputError
from . import fmt
from .document import Block, BulletList, Paragraph, Table
from .inputs import (MEAN_DOMAIN, condition_losses, eval_domains, ordered_labels, ordered_models, read_study_json,
                     validated)

BASELINES_FILE = "baselines.json"
MAX_NAMED = 8  # conditions named in one note line before "and N more"


class DomainBaseline(BaseModel):
    """The baselines of one eval domain (nats/token and bits per byte) and its eval set size."""

    model_config = ConfigDict(extra="allow")

    tokens: int | None = None
    bytes: int | None = None
    bytes_per_token: float | None = None
    uniform_loss: float
    uniform_bpb: float | None = None
    unigram_loss: float
    unigram_bpb: float | None = None


class Baselines(BaseModel):
    """``baselines.json``: per-domain baselines and how the unigram one was counted."""

    model_config = ConfigDict(extra="allow")

    vocab_size: int | None = None
    unigram_source: str | None = None
    unigram_tokens: int | None = None
    smoothing: str | None = None
    domains: dict[str, DomainBaseline] = {}


def parse_baselines(raw: Any, source: str = "baselines") -> Baselines | None:
    """Validate a baselines dict (None passes through); a bad field raises InputError naming it."""
    if raw is None or isinstance(raw, Baselines):
        return raw
    if not isinstance(raw, dict):
        raise InputError("baselines must be a JSON object", path=source)
    return validated(Baselines, raw, source)


def load_baselines(study_dir: Path) -> Baselines | None:
    """Read ``study_dir/baselines.json``; None when the study has none."""
    path = study_dir / BASELINES_FILE
    raw = read_study_json(path)
    return None if raw is None else parse_baselines(raw, source=str(path))


# ---------------------------------------------------------------- the findings-section note


def final_losses(results: pd.DataFrame, domain: str) -> pd.DataFrame:
    """Seed-mean loss of every (model, condition) at its largest budget on ``domain``."""
    losses = condition_losses(results, domain)
    if losses.empty:
        return losses
    last = losses.groupby(["model", "label"])["tokens"].transform("max")
    return losses[losses["tokens"] == last]


def baseline_notes(results: pd.DataFrame, baselines: Baselines) -> list[Block]:
    """The visible note: per domain, which final losses do not beat the unigram or uniform baseline."""
    domains = [d for d in eval_domains(results) if d in baselines.domains]
    if not domains:
        return []
    several_models = len(ordered_models(results)) > 1
    what = "model/recipe pairs" if several_models else "recipes"
    lines, margins = [], []
    for domain in domains:
        base = baselines.domains[domain]
        final = final_losses(results, domain)
        if final.empty:
            continue
        order = _condition_order(results)
        final = final.assign(_rank=[order.get((m, lab), len(order)) for m, lab in zip(final["model"], final["label"])])
        final = final.sort_values("_rank", kind="mergesort")
        names = [f"{lab} ({m})" if several_models else lab for m, lab in zip(final["model"], final["label"])]
        loss = final["loss"].to_numpy(dtype=float)
        above_unigram = [n for n, v in zip(names, loss) if v >= base.unigram_loss]
        above_uniform = [n for n, v in zip(names, loss) if v >= base.uniform_loss]
        if above_unigram:
            who = "This model" if len(above_unigram) == 1 else "These models"
            lines.append(f"On {domain}, {len(above_unigram)} of {len(names)} {what} {_end(above_unigram)} above "
                         f"the unigram baseline ({fmt.loss(base.unigram_loss)} nats/token): "
                         f"{_names(above_unigram)}. {who} learned little beyond token frequencies on {domain}.")
        if above_uniform:
            lines.append(f"On {domain}, {len(above_uniform)} of {len(names)} {what} {_end(above_uniform)} above "
                         f"the uniform baseline ln V = {fmt.loss(base.uniform_loss)} nats/token: worse than a uniform "
                         f"guess ({_names(above_uniform)}).")
        margins.append((base.unigram_loss - float(loss.max()), domain, float(loss.max())))
    if lines:
        return [Paragraph("**Note (baselines).** The final losses (each model and recipe at its largest "
                          "budget, seed mean) against each eval domain's baselines (table under Per-domain "
                          "loss):"), BulletList(tuple(lines))]
    if not margins:
        return []
    margin, domain, worst = min(margins)
    return [Paragraph(f"**Baselines.** Every final loss is below the unigram baseline on every eval domain; "
                      f"the closest is {fmt.loss(worst)} nats/token on {domain}, {fmt.loss(margin)} below it.")]


def _end(names: list[str]) -> str:
    return "ends" if len(names) == 1 else "end"


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def _condition_order(results: pd.DataFrame) -> dict[tuple[str, str], int]:
    labels = ordered_labels(results)
    models = ordered_models(results)
    return {(m, lab): i * len(labels) + j for i, m in enumerate(models) for j, lab in enumerate(labels)}


# ---------------------------------------------------------------- tables


def baselines_table(results: pd.DataFrame, baselines: Baselines) -> Table | None:
    """One row per eval domain: uniform and unigram baselines (nats/token, bpb), and the lowest final loss."""
    domains = [d for d in eval_domains(results) if d in baselines.domains]
    domains += sorted(d for d in baselines.domains if d not in domains)
    if not domains:
        return None
    largest = ordered_models(results)[-1]
    rows = []
    for domain in domains:
        b = baselines.domains[domain]
        final = final_losses(results, domain)
        final = final[final["model"] == largest] if not final.empty else final
        if final.empty:
            lowest = "n/a"
        else:
            i = final["loss"].to_numpy(dtype=float).argmin()
            lowest = f"{fmt.loss(float(final['loss'].iloc[i]))} ({final['label'].iloc[i]})"
        rows.append((domain, _count(b.tokens), fmt.num(b.bytes_per_token, 3), fmt.loss(b.uniform_loss),
                     fmt.loss(b.uniform_bpb), fmt.loss(b.unigram_loss), fmt.loss(b.unigram_bpb), lowest))
    source = baselines.unigram_source or "the natural training shard"
    counted = f"{fmt.tokens(baselines.unigram_tokens)} tokens of " if baselines.unigram_tokens else ""
    vocab = f" = ln {baselines.vocab_size}" if baselines.vocab_size else ""
    caption = (f"Reference losses on each domain's eval tokens. Uniform: every id of the vocabulary equally likely, "
               f"ln V{vocab}. Unigram: each token drawn from the token frequencies of the natural training corpus "
               f"({counted}{source}), add-one smoothed: p(t) = (count(t) + 1) / (N + V). A loss above the unigram "
               f"baseline means the model learned little beyond token frequencies; above the uniform one, worse "
               f"than a uniform guess. bpb = nats / ln 2 / bytes of the same eval tokens. Lowest final loss: "
               f"{largest} at its largest budget, seed mean.")
    return Table(("Domain", "Eval tokens", "Bytes/token", "Uniform (nats/token)", "Uniform (bpb)",
                  "Unigram (nats/token)", "Unigram (bpb)", "Lowest final loss"), tuple(rows), caption=caption)


def with_baseline_rows(table: Table, baselines: Baselines, metric: str = "loss") -> Table:
    """``table`` (a per-domain table: Recipe, one column per domain, mean, ...) with unigram and uniform rows.

    ``metric`` is "loss" (nats/token) or "bpb". The mean column gets the unweighted mean of the
    domains' baselines (the ``mean`` domain is the unweighted mean of the domain losses).
    """
    domains = [h for h in table.headers[1:] if h in baselines.domains]
    if not domains:
        return table
    extra = []
    for name in ("unigram", "uniform"):
        values = {d: getattr(baselines.domains[d], f"{name}_{metric}") for d in domains}
        cells = []
        for header in table.headers[1:]:
            if header in values:
                cells.append(fmt.loss(values[header]))
            elif header == MEAN_DOMAIN and len(values) == len(_domain_headers(table)) \
                    and all(v is not None for v in values.values()):
                cells.append(fmt.loss(sum(values.values()) / len(values)))
            else:
                cells.append("")
        extra.append((f"{name} baseline", *cells))
    return Table(table.headers, table.rows + tuple(extra), caption=table.caption, status_column=table.status_column)


def _domain_headers(table: Table) -> list[str]:
    """The domain columns of a per-domain table: those before the ``mean`` column."""
    headers = list(table.headers[1:])
    return headers[:headers.index(MEAN_DOMAIN)] if MEAN_DOMAIN in headers else headers


def _count(n: int | None) -> str:
    return "n/a" if n is None else str(n)


def has_bpb(results: pd.DataFrame) -> bool:
    """Whether the results table carries bits per byte (a ``bpb`` column with finite values)."""
    return "bpb" in results.columns and bool(results["bpb"].map(lambda v: v is not None and math.isfinite(v)).any())
