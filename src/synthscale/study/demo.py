"""`synthscale demo`: build toyworld, run the study on it, write the report.

Three profiles: ``quick`` (a small grid, for tests), ``default`` (the protocol's
recipes at 4+ budgets, <= 10 minutes on a 2-core CPU) and ``full`` (several model sizes
and the ratio grid of the paper; long). The demo writes an ordinary study spec
(``OUT/study.yaml``) and runs it like any other study, so every output can be rerun and
inspected with the same commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._io import atomic_write_text
from ..errors import ConfigError
from .runner import StudyOutcome, run_study
from .spec import load_spec


@dataclass(frozen=True)
class DemoProfile:
    """The size of the world and of the study grid for one demo profile."""

    toyworld: dict[str, Any]
    models: list[str]
    budgets: list[int]
    ratios: list[str]
    vocab_size: int
    seq_len: int
    batch_size: int
    eval_tokens: int
    bootstrap: int
    lr: float | None = None
    kinds: tuple[str, ...] = ("hq", "qa", "textbook")
    extra: dict[str, Any] = field(default_factory=dict)


# toyworld's synthetic kinds: hq and qa rewrite natural documents, textbook is written from topics
TOYWORLD_STYLES = {"hq": "rephrase", "qa": "rephrase", "textbook": "generate"}

# Sizes were chosen from measured CPU throughput (benchmarks/train_throughput.py): one
# process per core with one torch thread each; cpu-nano ~15-20k tokens/s, cpu-micro
# ~5-8k tokens/s per process at these batch sizes. Each budget is its own run.
PROFILES: dict[str, DemoProfile] = {
    "quick": DemoProfile(
        toyworld={"size": "small"}, models=["cpu-nano"], budgets=[16384, 32768, 65536, 131072],
        ratios=["1/3", "1"], kinds=("hq", "textbook"), vocab_size=1024, seq_len=64, batch_size=8,
        eval_tokens=8192, bootstrap=50,
    ),
    "default": DemoProfile(
        toyworld={"size": "default"}, models=["cpu-micro"], budgets=[32768, 65536, 131072, 262144],
        ratios=["1/3", "1"], vocab_size=2048, seq_len=128, batch_size=8, eval_tokens=16384, bootstrap=200,
    ),
    "full": DemoProfile(
        toyworld={"size": "default"}, models=["cpu-nano", "cpu-micro", "cpu-mini"],
        budgets=[32768, 65536, 131072, 262144, 524288, 1048576],
        ratios=["1/10", "1/5", "1/3", "1/2", "2/3", "1"], vocab_size=2048, seq_len=128, batch_size=8,
        eval_tokens=32768, bootstrap=500,
    ),
}


def _spec_path_text(path: Path, base: Path | None) -> str:
    """``path`` as written into a spec that lives in folder ``base``.

    A study spec's paths are read relative to the spec's own folder (see ``load_spec``),
    not to the current folder. With ``base``, a path under it is written relative to it
    (so the folder can be moved as a whole); otherwise the path is written absolute.
    """
    path = Path(path).absolute()
    if base is not None:
        try:
            return path.relative_to(Path(base).absolute()).as_posix()
        except ValueError:
            pass
    return str(path)


def demo_spec(profile: DemoProfile, corpora, seed: int, base: Path | None = None) -> dict[str, Any]:
    """The study spec (as a mapping) the demo runs on the toyworld corpora.

    ``base`` is the folder the spec will be written into: corpus paths under it are
    written relative to it; all others (and all, without ``base``) absolute.
    """
    def where(path: Path) -> str:
        return _spec_path_text(path, base)

    return {
        "name": "toyworld_demo",
        "seed": seed,
        "corpora": {
            "natural": where(corpora.natural),
            "synthetic": {k: {"path": where(corpora.synthetic[k]), "style": TOYWORLD_STYLES[k]} for k in profile.kinds},
        },
        "eval": {d: where(p) for d, p in sorted(corpora.eval.items())},
        "tokenizer": {"vocab_size": profile.vocab_size},
        "recipes": [{"kind": "natural"}] + [{"kind": k, "ratios": list(profile.ratios)} for k in profile.kinds],
        "models": list(profile.models),
        "budgets": list(profile.budgets),
        "seeds": [seed],
        # one torch thread per run (runs go in parallel, one per core): fastest for these
        # sizes, and the numbers do not depend on the machine's core count
        "training": {"seq_len": profile.seq_len, "batch_size": profile.batch_size, "threads": 1,
                     **({"lr": profile.lr} if profile.lr else {})},
        "evaluation": {"max_tokens_per_domain": profile.eval_tokens},
        "analysis": {"bootstrap": profile.bootstrap},
    }


def _profile(profile: str) -> DemoProfile:
    if profile not in PROFILES:
        raise ConfigError(f"--profile: unknown profile '{profile}' (choose from {', '.join(PROFILES)})")
    return PROFILES[profile]


def write_demo_spec(out: str | Path, corpora, profile: str = "default", seed: int = 0) -> Path:
    """Write OUT/study.yaml for the toyworld ``corpora`` (built under OUT); return its path.

    Corpus paths are written relative to OUT (the spec's folder, which is what
    ``load_spec`` resolves them against), whatever the current folder, so OUT can be moved.
    """
    prof = _profile(profile)
    out = Path(out)
    spec_path = out / "study.yaml"
    text = yaml.safe_dump(demo_spec(prof, corpora, seed, base=out), sort_keys=False)
    atomic_write_text(spec_path, f"# written by `synthscale demo --profile {profile} --seed {seed}`\n" + text)
    return spec_path


def run_demo(out: str | Path, profile: str = "default", seed: int = 0, progress: bool = True) -> StudyOutcome:
    """Build toyworld under OUT/toyworld, write OUT/study.yaml, run it into OUT/study.

    A relative OUT is taken from the current folder (like any CLI path); the study folder
    OUT/study is passed to the runner directly, not through the spec.
    """
    from ..toyworld import ToyworldConfig, build_toyworld

    prof = _profile(profile)
    out = Path(out)
    corpora = build_toyworld(out / "toyworld", ToyworldConfig.preset(seed=seed, **prof.toyworld))
    spec, _ = load_spec(write_demo_spec(out, corpora, profile, seed))
    return run_study(spec, out / "study", progress=progress)
