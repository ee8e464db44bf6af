"""Number formatting shared by tables, findings and plots (fixed precision, so output is stable)."""

from __future__ import annotations

import math


def tokens(n: float) -> str:
    """A token count with an SI suffix: 2.1M, 50B, 512k."""
    if n is None or not math.isfinite(n):
        return "n/a"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.0f}"


def per_param(x: float | None) -> str:
    """Tokens per parameter: two significant digits below 10 (0.25, 1.0), whole numbers above (21, 200)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2g}" if x < 1 else (f"{x:.1f}" if x < 10 else f"{x:.0f}")


def num(x: float | None, digits: int = 4) -> str:
    """A float with ``digits`` significant digits; 'n/a' for None/NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def loss(x: float | None) -> str:
    """A loss in nats with four decimals."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.4f}"


def signed(x: float | None) -> str:
    """A loss difference with an explicit sign and four decimals."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:+.4f}"


def factor(x: float | None) -> str:
    """A speedup factor: 1.83x."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}x"


def interval(ci: tuple[float, float] | None, digits: int = 4) -> str:
    """A 95% interval as [lo, hi]; 'no CI' when absent."""
    if ci is None:
        return "no CI"
    return f"[{num(ci[0], digits)}, {num(ci[1], digits)}]"


def ratio(r: float | None) -> str:
    """A synthetic fraction with three significant digits (as recipe names print it)."""
    return num(r, 3)


def bound(op: str, value: float, formatter=None) -> str:
    """A one-sided number, marked: '> 4x', '< 0.01x'."""
    return f"{op} {(formatter or factor)(value)}"


def bounded_interval(ci, ends: list[str | None] | None, digits: int = 3) -> str:
    """A 95% interval whose clipped ends are marked: [0.8, > 16]."""
    if ci is None:
        return "no CI"
    ends = ends or [None, None]
    parts = [("n/a" if v is None else (f"{op} " if op else "") + num(v, digits)) for v, op in zip(ci, ends)]
    return f"[{parts[0]}, {parts[1]}]"


def speedup(s) -> str:
    """A report.inputs.Speedup as printed: '1.83x', '> 4x' (a bound), 'no law', 'n/a'."""
    if s.status == "no law":
        return "no law"
    value, op = s.shown
    if value is None:
        return "n/a"
    text = bound(op, value) if op else factor(value)
    return text + (" (weak law)" if s.law_verdict == "weak" else "")
