"""RunState: a run's bookkeeping, the part of a resumable checkpoint that is not tensors.

The loop keeps one RunState and updates it as it goes; train/checkpoint.py writes it as
the fields of ``state.json`` (beside the format tag, the optimizer's param groups and
the python/numpy RNG scalars) and reads it back, so a resumed run continues with the
same position, metrics and decay-branch results.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from synthscale.errors import InputError


@dataclass
class RunState:
    """Where a run stands after ``step`` optimizer steps of its main run (JSON: ``to_json``/``from_json``)."""

    step: int = 0  # optimizer steps done by the main run
    tokens: int = 0  # step * tokens_per_step
    data_seq: int = 0  # sequences the main run has consumed: its position in the data
    metrics: list[dict[str, Any]] = field(default_factory=list)  # the metrics.jsonl records so far
    window: list[float] = field(default_factory=list)  # per-step losses (mean over ranks) not yet logged
    budget_evals: list[dict[str, Any]] = field(default_factory=list)  # one record per decay branch done
    final_loss: float = math.nan  # the training loss of the last logged step
    branch_steps: int = 0  # optimizer steps taken in decay branches
    model_config: dict[str, Any] | None = None  # of the run that wrote the state (checked on resume)
    train_config: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The state as the JSON-ready dict stored in ``state.json``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any], path: str = "state.json") -> "RunState":
        """The RunState of a ``state.json`` dict (without its format, optimizer and rng entries).

        InputError naming ``path`` when a field is missing or unknown.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        missing, unknown = [n for n in names if n not in d], sorted(set(d) - set(names))
        if missing or unknown:
            raise InputError(f"not a training state this version reads (missing {missing}, unknown {unknown})",
                             path=path)
        return cls(**{n: d[n] for n in names})
