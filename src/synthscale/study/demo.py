"""`synthscale demo`: build toyworld, run the study on it, write the report.

Four profiles: ``quick`` (the default's shape, smaller, for tests), ``default`` (the
protocol's recipes, 2 seeds, 7 budgets from 1 to 50 tokens per non-embedding parameter,
about 3.5 minutes on an idle 2-core CPU), ``full`` (three model sizes and the paper's
ratio grid; about 2 hours) and ``collapse`` (hq and textbook generated inside the study,
3 collapse rounds, finding 7; a few minutes). The demo writes an ordinary study spec (``OUT/study.yaml``) and
runs it like any other study, so every output can be rerun and inspected with the same
commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._io import atomic_write_text
from ..errors import ConfigError
from ..toyworld import ToyworldConfig, build_toyworld, write_topics
from .runner import StudyOutcome, run_study
from .spec import load_spec


@dataclass(frozen=True)
class DemoProfile:
    """The size of the world and of the study grid for one demo profile.

    ``seeds`` model seeds per condition (``seed``, ``seed + 1``, ...); with ``schedule``
    "wsd" each (recipe, seed) is one warmup-stable-decay run to the largest budget and
    the smaller budgets are its decay branches (``decay_frac`` of each budget).
    """

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
    seeds: int = 1
    schedule: str = "cosine"
    warmup_frac: float | None = None
    decay_frac: float | None = None
    rounds: int = 0  # > 0: the synthetic kinds are generated inside the study, with this many collapse rounds
    extra: dict[str, Any] = field(default_factory=dict)


# toyworld's synthetic kinds: hq and qa rewrite natural documents, textbook is written from topics
TOYWORLD_STYLES = {"hq": "rephrase", "qa": "rephrase", "textbook": "generate"}

# The demo is a scale model of the paper's study (PROTOCOL.md, "A faithful scale model"): its
# runs span 1 to 50 tokens per non-embedding parameter (the paper: 1-200, compute-optimal
# ~20), with 2 seeds per condition. On a 2-core CPU that is affordable only with the smallest
# rung (cpu-pico), a 512-token vocabulary (the head is a large share of a tiny model's FLOPs)
# and one WSD run per (recipe, seed) whose decay branches give the smaller budgets. Steps of
# 512 tokens (4 x 128) give the smallest budget 48 steps. README ("What the demo does") and
# docs/training.md ("The demo's regime") give the measured times, fits and the choices tried.
_WSD = dict(vocab_size=512, seq_len=128, batch_size=4, schedule="wsd", warmup_frac=0.01, decay_frac=0.2, seeds=2)

PROFILES: dict[str, DemoProfile] = {
    # cpu-pico (24.7k non-embedding params), D/N 0.99-9.9 over 5 budgets: 5 recipes x 2 seeds = 10 runs
    "quick": DemoProfile(
        toyworld={"size": "small"}, models=["cpu-pico"], budgets=[24576, 49152, 98304, 172032, 245760],
        ratios=["1/3", "1"], kinds=("hq", "textbook"), eval_tokens=8192, bootstrap=50, **_WSD,
    ),
    # cpu-pico, D/N 0.99-50 over 7 budgets: 7 recipes x 2 seeds = 14 runs
    "default": DemoProfile(
        toyworld={"size": "default"}, models=["cpu-pico"],
        budgets=[24576, 49152, 98304, 196608, 393216, 786432, 1245184],
        ratios=["1/3", "1"], eval_tokens=16384, bootstrap=200, **_WSD,
    ),
    # three sizes x the paper's ratio grid: 19 recipes x 2 seeds x 3 sizes = 114 runs; D/N up to
    # 100 (cpu-pico), 25 (cpu-nano) and 4.2 (cpu-micro); L(N) fits at every budget (8)
    "full": DemoProfile(
        toyworld={"size": "default"}, models=["cpu-pico", "cpu-nano", "cpu-micro"],
        budgets=[24576, 49152, 98304, 196608, 393216, 786432, 1572864, 2473984],
        ratios=["1/10", "1/5", "1/3", "1/2", "2/3", "1"], eval_tokens=16384, bootstrap=200,
        **{**_WSD, "warmup_frac": 0.005},  # 24 warmup steps, as the default: the 48-step budget's branch starts after
    ),
    # collapse (finding 7) in miniature: hq and textbook generated inside the study by the toyworld backend
    # (round 0), then twice by a cpu-pico trained in the round before (rounds 1 and 2: it continues the
    # same natural seed documents); natural, hq@1/3 and textbook@1/3, 3 budgets, 2 seeds per round
    "collapse": DemoProfile(
        toyworld={"size": "small"}, models=["cpu-pico"], budgets=[24576, 49152, 98304], ratios=["1/3"],
        kinds=("hq", "textbook"), eval_tokens=8192, bootstrap=50, rounds=3, **_WSD,
    ),
}

# collapse rounds > 0: the trained model continues this many words of each of this many seed documents
COLLAPSE_SEED_DOCS, COLLAPSE_PREFIX, COLLAPSE_TOKENS = 400, 24, 96
TOPICS_FILE = "topics.txt"  # the world's topic catalogue, one per line (the collapse profile's textbook topics)


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

    synthetic = {k: {"path": where(corpora.synthetic[k]), "style": TOYWORLD_STYLES[k]} for k in profile.kinds}
    if profile.rounds:
        topics = where(corpora.root / TOPICS_FILE)
        synthetic = {k: {"style": TOYWORLD_STYLES[k],
                         "generate": _collapse_generation(k, where(corpora.world), topics, profile.rounds)}
                     for k in profile.kinds}
    return {
        "name": "toyworld_demo",
        "seed": seed,
        "corpora": {
            "natural": where(corpora.natural),
            "synthetic": synthetic,
        },
        "eval": {d: where(p) for d, p in sorted(corpora.eval.items())},
        "tokenizer": {"vocab_size": profile.vocab_size},
        "recipes": [{"kind": "natural"}] + [{"kind": k, "ratios": list(profile.ratios)} for k in profile.kinds],
        "models": list(profile.models),
        "budgets": list(profile.budgets),
        "seeds": [seed + i for i in range(profile.seeds)],
        # one torch thread per run (runs go in parallel, one per core): fastest for these
        # sizes, and the numbers do not depend on the machine's core count
        "training": {"seq_len": profile.seq_len, "batch_size": profile.batch_size, "threads": 1,
                     **({"lr": profile.lr} if profile.lr else {}),
                     **({"schedule": profile.schedule} if profile.schedule != "cosine" else {}),
                     **({"warmup_frac": profile.warmup_frac} if profile.warmup_frac is not None else {}),
                     **({"decay_frac": profile.decay_frac} if profile.decay_frac is not None else {})},
        "evaluation": {"max_tokens_per_domain": profile.eval_tokens},
        "analysis": {"bootstrap": profile.bootstrap},
    }


def _collapse_generation(kind: str, world: str, topics: str, rounds: int) -> dict[str, Any]:
    """The generate block of a collapse-profile kind: toyworld writes round 0 (hq from natural documents,
    textbook from the world's topic catalogue), a model trained in round k writes round k+1 (continuing the
    same natural seed documents), the rounds accumulating."""
    return {"from": "natural", **({"topics": topics} if TOYWORLD_STYLES[kind] == "generate" else {}),
            "style": kind, "backend": "toyworld", "model": world, "gates": "off",
            "chunk_tokens": 0, "max_docs": COLLAPSE_SEED_DOCS,
            "rounds": {"n": rounds, "mode": "accumulate", "prefix_tokens": COLLAPSE_PREFIX,
                       "max_tokens": COLLAPSE_TOKENS}}


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

    prof = _profile(profile)
    out = Path(out)
    corpora = build_toyworld(out / "toyworld", ToyworldConfig.preset(seed=seed, **prof.toyworld))
    if prof.rounds:
        write_topics(corpora.world, corpora.root / TOPICS_FILE)
    spec, _ = load_spec(write_demo_spec(out, corpora, profile, seed))
    return run_study(spec, out / "study", progress=progress)
