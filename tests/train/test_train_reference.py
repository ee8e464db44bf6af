"""The stored reference curve holds: today's code trains the reference run (tests/assets/reference) to the
same losses, learning rates, grad norms and final weights, bit for bit on the kind of CPU the reference was
recorded on (vector ISA and CPU model), to float32 rounding elsewhere.

A refactor that moves the numbers fails here, even when it moves them the same way in every run. If the numbers
must move, rewrite the reference (``python tests/assets/reference/reference.py --write``) in a commit of its own
that says why.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "reference"


def _reference_module():
    spec = importlib.util.spec_from_file_location("synthscale_reference_run", ASSETS / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_run_matches_the_stored_curve_bit_for_bit(tmp_path: Path) -> None:
    reference = _reference_module()
    stored = json.loads(reference.CURVE.read_text())
    assert len(stored["curve"]) == 20, "the stored reference should log every one of its 20 steps"
    got = reference.run_reference(tmp_path / "run")
    assert got["settings"] == stored["settings"] and got["rung"] == stored["rung"]
    machine = (got["cpu_capability"], got["cpu_model"])
    recorded_on = (stored["cpu_capability"], stored["cpu_model"])
    if machine != recorded_on:
        # Another vector ISA or CPU model (MKL dispatches on both) sums in another order: hold the curve to
        # float32 rounding, not to the bit.
        for mine, theirs in zip(got["curve"], stored["curve"], strict=True):
            assert mine["step"] == theirs["step"] and mine["tokens"] == theirs["tokens"]
            for key in ("loss", "lr", "grad_norm"):
                assert math.isclose(mine[key], theirs[key], rel_tol=1e-4), (mine["step"], key, mine[key], theirs[key])
        pytest.skip(f"recorded on {' '.join(recorded_on)}, this CPU is {' '.join(machine)}: "
                    "curve checked to 1e-4, weights hash not comparable")
    for mine, theirs in zip(got["curve"], stored["curve"], strict=True):
        assert mine == theirs, f"step {theirs['step']}: {mine} != stored {theirs}"
    assert got["weights_sha256"] == stored["weights_sha256"]


def test_reference_check_can_fail(tmp_path: Path) -> None:
    """The comparison sees a change of the learning rate in its sixth digit, in the losses themselves."""
    reference = _reference_module()
    stored = json.loads(reference.CURVE.read_text())
    settings = dict(reference.SETTINGS, lr=reference.SETTINGS["lr"] * (1 + 1e-6), tokens=4 * 4 * 64)
    reference.SETTINGS = settings
    got = reference.run_reference(tmp_path / "run")
    assert [r["loss"] for r in got["curve"][1:4]] != [r["loss"] for r in stored["curve"][1:4]]
    assert torch.backends.cpu.get_cpu_capability() == got["cpu_capability"]
