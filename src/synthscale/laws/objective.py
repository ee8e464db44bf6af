"""The objective every law is fitted with, on one or many datasets at once.

Hoffmann et al. (2022): the Huber loss (delta 1e-3) of the residual ``log L_pred - log L``,
summed over points (optionally averaged, or plain least squares), where ``log L_pred`` is a
log-sum-exp of terms linear in theta (forms.py) - so its gradient is a few matrix products.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LOSSES = ("huber", "lsq")
REDUCTIONS = ("sum", "mean")
_CHUNK_ELEMENTS = 1 << 16  # rows x points per block: keeps temporaries in cache


class LogLossObjective:
    """Weighted Huber (or squared) loss of log-space residuals, with its gradient.

    Holds one or more datasets of the same form: ``designs`` is [K, n, P] for one
    (forms.Form.designs) or [D, K, n, P] for D datasets padded to a common n (padding
    points carry zero weight), ``log_loss`` is [n] or [D, n]. ``value_and_grad``
    evaluates many parameter vectors at once, each on its own dataset with its own point
    weights (bootstrap counts, held-out points).
    """

    def __init__(
        self,
        designs: np.ndarray,
        log_loss: np.ndarray,
        *,
        loss: str = "huber",
        delta: float = 1e-3,
        reduction: str = "sum",
        dtype: type = np.float64,
    ):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.dtype = np.dtype(dtype)
        designs = np.asarray(designs, dtype=self.dtype)
        self.designs = np.ascontiguousarray(designs[None] if designs.ndim == 3 else designs)  # [D, K, n, P]
        self._designs_t = np.ascontiguousarray(self.designs.transpose(0, 1, 3, 2))  # [D, K, P, n]
        self.log_loss = np.atleast_2d(np.asarray(log_loss, dtype=self.dtype))  # [D, n]
        self.loss = loss
        self.delta = float(delta)
        self.reduction = reduction

    @classmethod
    def stacked(cls, objectives: Sequence[LogLossObjective]) -> LogLossObjective:
        """One objective holding the datasets of several (same form and settings)."""
        first = objectives[0]
        n = max(o.n_points for o in objectives)

        def pad(a: np.ndarray, axis: int) -> np.ndarray:  # zero points up to n along `axis`
            widths = [(0, 0)] * a.ndim
            widths[axis] = (0, n - a.shape[axis])
            return np.pad(a, widths)

        designs = np.concatenate([pad(o.designs, 2) for o in objectives])
        log_loss = np.concatenate([pad(o.log_loss, 1) for o in objectives])
        return cls(designs, log_loss, loss=first.loss, delta=first.delta, reduction=first.reduction, dtype=first.dtype)

    def with_dtype(self, dtype: type) -> LogLossObjective:
        """The same objective computed in another float precision."""
        return LogLossObjective(
            self.designs, self.log_loss, loss=self.loss, delta=self.delta, reduction=self.reduction, dtype=dtype
        )

    @property
    def n_points(self) -> int:
        return self.log_loss.shape[1]

    def value_and_grad(self, thetas: np.ndarray, weights: np.ndarray | None = None, dataset: np.ndarray | None = None):
        """Objective [S] and gradient [S, P] at ``thetas`` [S, P].

        ``weights`` is None (every point once), [n] (shared) or [S, n] (one row per theta);
        ``dataset`` is None (all rows on dataset 0) or the dataset of each row [S].
        """
        thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        n_rows = thetas.shape[0]
        f = np.empty(n_rows)
        g = np.empty_like(thetas)
        if weights is None:
            weights = np.ones(self.n_points, dtype=self.dtype)
        weights = np.asarray(weights, dtype=self.dtype)
        dataset = np.zeros(1, dtype=int) if dataset is None else np.asarray(dataset, dtype=int)
        one_dataset = bool((dataset == dataset[0]).all())
        step = max(
            1, _CHUNK_ELEMENTS // (self.designs[0].size if one_dataset else self.designs[0].size + self.n_points)
        )
        for lo in range(0, n_rows, step):
            hi = min(n_rows, lo + step)
            w = weights if weights.ndim == 1 else weights[lo:hi]
            d = int(dataset[0]) if one_dataset else dataset[lo:hi]
            # A trial point far out (overflowing, in the single-precision screening) gives a
            # non-finite objective, which the optimisers reject: no warning needed.
            with np.errstate(over="ignore", invalid="ignore"):
                f[lo:hi], g[lo:hi] = self._block(thetas[lo:hi], w, d)
        return f, g

    def _block(self, x: np.ndarray, w: np.ndarray, d: int | np.ndarray):
        """Rows ``x`` on dataset ``d`` (one index, or one per row)."""
        x = x.astype(self.dtype)
        if np.ndim(d) == 0:  # one dataset for the whole block: plain matrix products
            u = np.matmul(x[None], self._designs_t[d])  # [K, s, n]
        else:
            u = np.einsum("sknp,sp->ksn", self.designs[d], x)
        y = self.log_loss[d]
        top = u.max(axis=0)
        np.subtract(u, top, out=u)
        np.exp(u, out=u)
        total = u.sum(axis=0)
        resid = top + np.log(total) - y
        if self.loss == "huber":
            slope = np.clip(resid, -self.delta, self.delta)
            per_point = slope * (resid - 0.5 * slope)  # = Huber_delta(resid) in both regimes
        else:
            slope = resid
            per_point = 0.5 * resid * resid
        w = np.broadcast_to(w, resid.shape)
        scale = 1.0 / w.sum(axis=1) if self.reduction == "mean" else np.ones(len(w), dtype=self.dtype)
        f = np.einsum("sn,sn->s", per_point, w) * scale
        np.multiply(u, slope * w * (scale[:, None] / total), out=u)  # d f / d u_k
        if np.ndim(d) == 0:
            g = np.matmul(u, self.designs[d]).sum(axis=0)
        else:
            g = np.einsum("ksn,sknp->sp", u, self.designs[d])
        return f, g


class ProblemSet:
    """Minimisation problems sharing one parameter space.

    Problem r minimises dataset ``which[r]`` of ``objective`` with point weights
    ``weights[r]`` (a recipe's fit: all ones; a leave-largest-out refit: zeros on the
    held-out points; a bootstrap resample: how often each point's run was drawn).
    """

    def __init__(self, objective: LogLossObjective, which: Sequence[int], weights: Sequence[np.ndarray]):
        self.objective = objective
        self.which = np.asarray(which, dtype=int)
        self.weights = np.zeros((len(self.which), objective.n_points), dtype=objective.dtype)
        for r, w in enumerate(weights):
            self.weights[r, : len(w)] = w

    def __len__(self) -> int:
        return len(self.which)

    def with_dtype(self, dtype: type) -> ProblemSet:
        """The same problems computed in another float precision."""
        return ProblemSet(self.objective.with_dtype(dtype), self.which, self.weights)

    def value_and_grad(self, x: np.ndarray, problem: np.ndarray):
        """Objective and gradient of row i of ``x`` for problem ``problem[i]``."""
        if (problem == problem[0]).all():  # a multi-start fit of one problem: share its weights
            return self.objective.value_and_grad(x, self.weights[problem[0]], self.which[problem[:1]])
        return self.objective.value_and_grad(x, self.weights[problem], self.which[problem])
