"""Fixtures of the generate tests that use real text: the C4 sample in ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED

C4 = SHARED / "corpora" / "natural" / "c4_en_1k.jsonl.gz"
PROVENANCE = ("parent_id", "style", "generator", "prompt_hash", "sampling", "seed")


@pytest.fixture(scope="module")
def c4() -> Path:
    """The C4 sample of ../shared/corpora/natural; skips the test when it is absent."""
    if not C4.is_file():
        pytest.skip("../shared/corpora/natural is absent")
    return C4
