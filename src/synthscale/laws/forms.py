"""Functional forms of the scaling laws, all written as one log-sum-exp.

Every law here is ``log L = logsumexp_k(u_k)`` where each term ``u_k`` is linear in the
log-space parameters theta (the Hoffmann et al. / Besiroglu et al. parametrisation with
``a = log A``, ``b = log B``, ``e = log E``). For example the Chinchilla law
``L = E + A N^-alpha + B D^-beta`` has the terms ``a - alpha log N``, ``b - beta log D``
and ``e``. Storing each term as a design matrix ``M_k`` (one row per point) makes the
prediction ``u_k = M_k @ theta`` a matrix product, which is what lets the optimiser fit
thousands of starts at once.

The ratio laws let the log-coefficients vary quadratically with the synthetic ratio r:
``b(r) = b + b_r1 r + b_r2 r^2`` (and the same for a and e), with shared exponents. See
docs/laws.md for why.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from synthscale.errors import ConfigError

#: Input variables a law can depend on (columns of the points table).
VARIABLES = ("params", "tokens", "ratio")

# Start values per log-space parameter: Hoffmann et al. (2022) App. D.2, as replicated by
# Besiroglu et al. (2024): alpha, beta in {0, .5, ..., 2}, e in {-1, -.5, ..., 1},
# a, b in {0, 5, ..., 25}. Coefficients of r start at 0 (the law is flat in r).
GRID_VALUES: dict[str, tuple[float, ...]] = {
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
_R_COEF_START = (0.0,)

# How each feature is computed from the variables of a point.
_FEATURES = {
    "1": lambda x, n: np.ones(n),
    "-logN": lambda x, n: -np.log(x["params"]),
    "-logD": lambda x, n: -np.log(x["tokens"]),
    "r": lambda x, n: x["ratio"],
    "r2": lambda x, n: x["ratio"] ** 2,
}

# Natural-scale names of the log-space coefficients.
_NATURAL = {"a": "A", "b": "B", "e": "E"}


@dataclass(frozen=True)
class Form:
    """One functional form: its variables, log-space parameters and log-sum-exp terms.

    ``terms`` holds, per term, a mapping from a parameter name to the feature it
    multiplies ("1", "-logN", "-logD", "r", "r2").
    """

    name: str
    variables: tuple[str, ...]
    theta_names: tuple[str, ...]
    terms: tuple[tuple[tuple[str, str], ...], ...]
    min_distinct: tuple[tuple[str, int], ...]
    holdout_axis: str
    tied: bool = False

    @property
    def n_params(self) -> int:
        """Number of free log-space parameters."""
        return len(self.theta_names)

    def designs(self, x: dict[str, np.ndarray]) -> np.ndarray:
        """Design tensor [K terms, n points, P params] such that ``u_k = M_k @ theta``."""
        missing = [v for v in self.variables if v not in x]
        if missing:
            raise ConfigError(f"form '{self.name}' needs the variable(s) {', '.join(missing)}")
        n = len(np.asarray(x[self.variables[0]]))
        arrays = {k: np.asarray(v, dtype=float) for k, v in x.items()}
        out = np.zeros((len(self.terms), n, self.n_params))
        for k, term in enumerate(self.terms):
            for name, feature in term:
                out[k, :, self.theta_names.index(name)] += _FEATURES[feature](arrays, n)
        return out

    def start_grid(self) -> np.ndarray:
        """The default start grid [S, P]: the Cartesian product of the per-parameter values."""
        axes = [GRID_VALUES.get(name, _R_COEF_START) for name in self.theta_names]
        return np.array(list(itertools.product(*axes)), dtype=float)

    def predict_log(self, theta: np.ndarray, x: dict[str, np.ndarray]) -> np.ndarray:
        """Predicted log loss; ``theta`` is [P] or [S, P] (result [n] or [S, n])."""
        u = np.einsum("knp,...p->...kn", self.designs(x), np.asarray(theta, dtype=float))
        return np.logaddexp.reduce(u, axis=-2)

    def predict(self, theta: np.ndarray, x: dict[str, np.ndarray]) -> np.ndarray:
        """Predicted loss at the points ``x`` (dict of variable arrays)."""
        return np.exp(self.predict_log(theta, x))

    def natural_names(self) -> tuple[str, ...]:
        """Names of the reported parameters (E, A, B, alpha, beta, r-coefficients)."""
        names = [_NATURAL.get(n, n) for n in self.theta_names]
        if self.tied:
            names.append("beta")
        return tuple(names)

    def natural(self, theta: np.ndarray) -> np.ndarray:
        """Natural-scale parameters (exp of a, b, e) in ``natural_names`` order; [.., P'] ."""
        theta = np.asarray(theta, dtype=float)
        with np.errstate(over="ignore"):  # a coefficient beyond float range is inf: judged downstream
            cols = [np.exp(theta[..., i]) if n in _NATURAL else theta[..., i] for i, n in enumerate(self.theta_names)]
        if self.tied:
            cols.append(theta[..., self.theta_names.index("alpha")])
        return np.stack(cols, axis=-1)

    def data_law(self, theta: np.ndarray, params: float | None = None, ratio: float | None = None):
        """(E, B, beta) of the law as a function of tokens alone, at fixed params and ratio.

        ``theta`` may be [P] or [S, P]; returns three arrays of matching shape. For the
        Chinchilla and full ratio forms the model-size term is folded into E.
        """
        if "tokens" not in self.variables:
            raise ConfigError(f"form '{self.name}' does not depend on tokens")
        if "ratio" in self.variables and ratio is None:
            raise ConfigError(f"form '{self.name}' needs a ratio to give a data law")
        if "params" in self.variables and params is None:
            raise ConfigError(f"form '{self.name}' needs params to give a data law")
        t = np.asarray(theta, dtype=float)
        r = 0.0 if ratio is None else float(ratio)

        def coef(name: str):
            return t[..., self.theta_names.index(name)]

        def at_ratio(base: str):  # c(r) = c + c_r1 r + c_r2 r^2 (just c without r-terms)
            if f"{base}_r1" not in self.theta_names:
                return coef(base)
            return coef(base) + coef(f"{base}_r1") * r + coef(f"{base}_r2") * r * r

        log_e, log_b = at_ratio("e"), at_ratio("b")
        beta = coef("alpha") if self.tied else coef("beta")
        if "params" in self.variables:
            log_e = np.logaddexp(log_e, at_ratio("a") - coef("alpha") * np.log(float(params)))
        return np.exp(log_e), np.exp(log_b), beta


def _term(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(pairs.items())


def _ratio_term(base: str, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return ((base, "1"), (f"{base}_r1", "r"), (f"{base}_r2", "r2"), *extra)


_FORMS = {
    "data": Form(
        name="data",
        variables=("tokens",),
        theta_names=("b", "e", "beta"),
        terms=(_term(b="1", beta="-logD"), _term(e="1")),
        min_distinct=(("tokens", 3),),
        holdout_axis="tokens",
    ),
    "model": Form(
        name="model",
        variables=("params",),
        theta_names=("a", "e", "alpha"),
        terms=(_term(a="1", alpha="-logN"), _term(e="1")),
        min_distinct=(("params", 3),),
        holdout_axis="params",
    ),
    "chinchilla": Form(
        name="chinchilla",
        variables=("params", "tokens"),
        theta_names=("a", "b", "e", "alpha", "beta"),
        terms=(_term(a="1", alpha="-logN"), _term(b="1", beta="-logD"), _term(e="1")),
        min_distinct=(("params", 2), ("tokens", 2)),
        holdout_axis="params",
    ),
    "ratio_data": Form(
        name="ratio_data",
        variables=("tokens", "ratio"),
        theta_names=("b", "b_r1", "b_r2", "e", "e_r1", "e_r2", "beta"),
        terms=(_ratio_term("b", ("beta", "-logD")), _ratio_term("e")),
        min_distinct=(("tokens", 2), ("ratio", 3)),
        holdout_axis="tokens",
    ),
    "ratio": Form(
        name="ratio",
        variables=("params", "tokens", "ratio"),
        theta_names=("a", "a_r1", "a_r2", "b", "b_r1", "b_r2", "e", "e_r1", "e_r2", "alpha", "beta"),
        terms=(_ratio_term("a", ("alpha", "-logN")), _ratio_term("b", ("beta", "-logD")), _ratio_term("e")),
        min_distinct=(("params", 2), ("tokens", 2), ("ratio", 3)),
        holdout_axis="tokens",
    ),
}

FORM_NAMES = tuple(_FORMS)


def get_form(name: str, tie_exponents: bool = False) -> Form:
    """The form called ``name`` (data, model, chinchilla, ratio_data, ratio).

    ``tie_exponents`` (Chinchilla form only) fits one exponent for N and D
    (alpha = beta), as Muennighoff et al. (2023) did for their C4 base law.
    """
    if name not in _FORMS:
        raise ConfigError(f"unknown law form '{name}' (expected one of {', '.join(FORM_NAMES)})")
    form = _FORMS[name]
    if not tie_exponents:
        return form
    if name != "chinchilla":
        raise ConfigError(f"tie_exponents applies to the chinchilla form only, not '{name}'")
    return Form(
        name="chinchilla",
        variables=form.variables,
        theta_names=("a", "b", "e", "alpha"),
        terms=(_term(a="1", alpha="-logN"), _term(b="1", alpha="-logD"), _term(e="1")),
        min_distinct=form.min_distinct,
        holdout_axis=form.holdout_axis,
        tied=True,
    )
