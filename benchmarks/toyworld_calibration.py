"""toyworld against real rewrites: one JSON line per figure (issue 11; docs/toyworld.md, Calibration).

Measures, with the diagnostics stage (``synthscale corpus compare``: a byte-level BPE of
2048 tokens trained on both sides of each pair), how far each synthetic corpus is from its
natural source: unigram KL both ways, unseen token mass both ways, length ratio and, for
rewrites, per-pair token overlap and near-copies. Pairs measured:

- real (from ../shared/corpora, skipped when absent): wiki_news_chatgpt original vs
  rephrase_base and vs generated_base, common_pile_wrap_fewshot original vs rephrase (the
  rewrite range), and the C4 sample vs the library-of-phi textbooks (the textbook reference);
- toyworld natural vs hq, qa and textbook, at each requested size (default: small, default).

Then one line per calibration check: toyworld natural->hq and ->qa within the real rewrite
range (at most 1.5x its top), natural->textbook within 3x of C4 vs textbooks.

    PYTHONPATH=src python benchmarks/toyworld_calibration.py [--sizes small,default] [--vocab-size 2048]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from synthscale.diagnostics import compare_corpora
from synthscale.diagnostics.reference import (REAL_FIGURES, REFERENCE_VOCAB_SIZE, calibration_bounds,
                                              measure_real_pairs)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
VOCAB_SIZE = REFERENCE_VOCAB_SIZE

def figures(result: dict) -> dict:
    """The figures of a compare_corpora result that a calibration line reports."""
    pairs = result.get("pairs") or {}
    return {k: _round(result[k]) for k in ("kl_a_b", "kl_b_a", "unseen_a_in_b", "unseen_b_in_a", "length_ratio")} | {
        "pair_overlap": _round(pairs.get("overlap")), "pair_recall": _round(pairs.get("recall")),
        "near_copy_share": _round(pairs.get("near_copy_share")),
        "distinct_3": [_round(result["a"]["distinct_3"]), _round(result["b"]["distinct_3"])],
        "gzip_ratio": [_round(result["a"]["gzip_ratio"]), _round(result["b"]["gzip_ratio"])],
        "tokens": [result["a"]["tokens"], result["b"]["tokens"]]}


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 5)


def measure_real(vocab_size: int = VOCAB_SIZE) -> dict[str, dict]:
    """Every real pair's figures ({} when ../shared/corpora is absent)."""
    if not SHARED.exists():
        return {}
    return {name: figures(result) for name, result in measure_real_pairs(SHARED, vocab_size).items()}


def measure_toyworld(root: Path, vocab_size: int = VOCAB_SIZE) -> dict[str, dict]:
    """toyworld natural vs each synthetic kind, for a world built under ``root``."""
    from synthscale.toyworld import ToyworldCorpora

    corpora = ToyworldCorpora.under(root)
    return {kind: figures(compare_corpora(corpora.natural, corpora.synthetic[kind], vocab_size=vocab_size))
            for kind in ("hq", "qa", "textbook")}


def checks(toy: dict[str, dict], bounds: dict[str, dict[str, tuple[float, float]]]) -> list[dict]:
    """One record per (kind, figure): the value, the bounds and whether it is inside."""
    return [{"kind": kind, "measure": f, "value": toy[kind][f], "lo": round(lo, 5), "hi": round(hi, 5),
             "ok": lo <= toy[kind][f] <= hi}
            for kind, fs in bounds.items() for f, (lo, hi) in fs.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,default", help="comma-separated toyworld sizes")
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    parser.add_argument("--seed", type=int, default=0, help="toyworld seed")
    args = parser.parse_args()
    from synthscale.toyworld import ToyworldConfig, build_toyworld

    start = time.perf_counter()
    real = measure_real(args.vocab_size)
    for name, figs in real.items():
        print(json.dumps({"figure": "real_pair", "pair": name, "vocab_size": args.vocab_size, **figs}))
    measured = {k: {"kl_a_b": v["kl_a_b"], "unseen_a_in_b": v["unseen_a_in_b"]} for k, v in real.items()}
    bounds = calibration_bounds(measured if measured else REAL_FIGURES)
    for size in args.sizes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            build_toyworld(tmp, ToyworldConfig.preset(size, seed=args.seed), progress=False)
            toy = measure_toyworld(Path(tmp), args.vocab_size)
        for kind, figs in toy.items():
            print(json.dumps({"figure": "toyworld_pair", "size": size, "pair": f"natural:{kind}",
                              "vocab_size": args.vocab_size, **figs}))
        for check in checks(toy, bounds):
            print(json.dumps({"figure": "calibration_check", "size": size,
                              "reference": "measured" if measured else "recorded", **check}))
    print(json.dumps({"figure": "wall_s", "value": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
