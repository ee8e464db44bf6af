"""Where a run's batches come from, and how it restarts them at a step.

``train()`` accepts three kinds of data, all giving one global batch [batch_size,
seq_len + 1] per optimizer step:

- an object with ``.batches(batch_size, start_seq)`` (e.g. ``tokens.MixtureStream``);
- a callable ``batches_from(start_seq) -> iterator of batches``;
- a plain iterable of batches (the older form).

The first two restart cheaply at any sequence index. A plain iterable restarts by
skipping: resuming at step k reads and drops k batches, which is exact when the
iterable yields the same batches every time it is made (as ``MixtureStream.batches``
does). Decay branches read ahead of the main run: restartable sources open a second
iterator at the fork; a plain iterable keeps the branch's batches in memory until the
main run has consumed them.

Every batch is checked (shape, integer dtype, token range) before it reaches the model,
and each rank takes its contiguous slice of the global batch (``device_batch``).
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from synthscale.errors import InputError
from synthscale.train.config import TrainConfig
from synthscale.train.distributed import DistContext, local_rows

Batches = Iterable[np.ndarray] | Callable[[int], Iterable[np.ndarray]] | Any


class BatchCursor:
    """The main run's position in the data (in optimizer steps), with read-ahead for branches."""

    def __init__(self, batches: Batches, batch_size: int, start_step: int = 0):
        self.batch_size = batch_size
        self.step = start_step
        self._open = _opener(batches, batch_size)
        self._ahead: collections.deque[np.ndarray] = collections.deque()
        if self._open is None:  # a plain iterable: skip to the start step
            self._iter = iter(batches)
            for _ in itertools.islice(self._iter, start_step):
                pass
        else:
            self._iter = iter(self._open(start_step * batch_size))

    @property
    def restartable(self) -> bool:
        """Whether the source can be opened at any sequence index."""
        return self._open is not None

    def next(self) -> np.ndarray | None:
        """The batch of the current step (None when the data ran out); advances one step."""
        batch = self._ahead.popleft() if self._ahead else next(self._iter, None)
        self.step += 1
        return batch

    def peek(self, n: int) -> Iterator[np.ndarray]:
        """The next ``n`` batches, without moving the main run's position."""
        if self._open is not None:
            return itertools.islice(iter(self._open(self.step * self.batch_size)), n)
        while len(self._ahead) < n:
            batch = next(self._iter, None)
            if batch is None:
                break
            self._ahead.append(batch)
        return iter(list(self._ahead)[:n])


def device_batch(batch: np.ndarray | None, step: int, steps: int, cfg: TrainConfig, vocab_size: int,
                 ctx: DistContext) -> torch.Tensor:
    """Batch ``step`` (0-based, of ``steps``) checked for shape and token range, cut to this rank's rows, on the device.

    ``batch`` is the global batch [batch_size, seq_len + 1]; None (the data ran out) and
    malformed batches raise InputError naming the step.
    """
    if batch is None:
        raise InputError(f"the data ran out at step {step + 1} of {steps}")
    batch = np.asarray(batch)
    expected = (cfg.batch_size, cfg.seq_len + 1)
    if batch.shape != expected or not np.issubdtype(batch.dtype, np.integer):
        raise InputError(
            f"batch {step + 1}: expected an integer array of shape {expected}, got {batch.dtype} {batch.shape}"
        )
    lo, hi = int(batch.min()), int(batch.max())
    if lo < 0 or hi >= vocab_size:
        raise InputError(f"batch {step + 1}: token ids must be in [0, {vocab_size}), got [{lo}, {hi}]")
    batch = local_rows(batch, ctx)
    if batch.dtype != np.int64 or not batch.flags.writeable or not batch.flags.c_contiguous:
        batch = np.ascontiguousarray(batch, dtype=np.int64)
    return torch.from_numpy(batch).to(ctx.device, non_blocking=True)


def _opener(batches: Batches, batch_size: int) -> Callable[[int], Iterable[np.ndarray]] | None:
    """A function start_seq -> batches for restartable sources; None for plain iterables."""
    method = getattr(batches, "batches", None)
    if callable(method):
        return lambda start_seq: method(batch_size, start_seq=start_seq)
    if callable(batches) and not isinstance(batches, Iterable):
        return batches
    return None
