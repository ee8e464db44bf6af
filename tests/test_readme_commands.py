"""The README's first command, run the way a user runs it: from the repository root, with a relative --out.

Every other test passes absolute temporary folders, which hid a bug: the demo wrote corpus
paths relative to the current folder into OUT/study.yaml, and the spec loader (rightly)
reads them relative to the yaml's folder, so `synthscale demo --out demo_out` looked for
demo_out/demo_out/toyworld/natural.jsonl.gz and stopped (issue 10, item 0).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synthscale.study.demo import PROFILES, demo_spec, write_demo_spec
from synthscale.study.spec import load_spec
from synthscale.toyworld.build import ToyworldCorpora

from tests.conftest import ROOT

README_COMMAND = "bash scripts/setup.sh && .venv/bin/synthscale demo --out demo_out"


def readme_demo_command() -> list[str]:
    """The synthscale part of the README's demo line, read from its first ```bash block.

    Fails (does not skip) when the line is not there, so the README and this test cannot drift apart.
    """
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    assert block, "README.md has no ```bash block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    assert README_COMMAND in lines, f"README.md's first ```bash block no longer holds `{README_COMMAND}`"
    setup, _, command = README_COMMAND.partition(" && ")
    assert setup == "bash scripts/setup.sh"  # CI has just run it (scripts/setup.sh dev): not run again here
    return shlex.split(command)


def _synthscale_executable() -> list[str]:
    """The README's `.venv/bin/synthscale`: the console script beside this test's python, else `python -m`."""
    script = Path(sys.executable).parent / "synthscale"
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m",
                                                                                   "synthscale.cli"]


@pytest.fixture
def relative_out() -> str:
    """A fresh folder name relative to the repository root (removed afterwards; .gitignore'd)."""
    name = f".pytest_demo_{os.getpid()}"
    shutil.rmtree(ROOT / name, ignore_errors=True)
    try:
        yield name
    finally:
        shutil.rmtree(ROOT / name, ignore_errors=True)


def _assert_yaml_relative_paths(out: Path) -> None:
    """OUT/study.yaml names its corpora relative to its own folder, and they exist there."""
    raw = yaml.safe_load((out / "study.yaml").read_text(encoding="utf-8"))
    synthetic = [s["path"] if isinstance(s, dict) else s for s in raw["corpora"]["synthetic"].values()]
    paths = [raw["corpora"]["natural"], *synthetic, *raw["eval"].values()]
    assert len(paths) >= 5
    for p in paths:
        assert not Path(p).is_absolute(), f"study.yaml: {p} is absolute (the folder could not be moved)"
        assert p.startswith("toyworld/"), p
        assert (out / p).is_file(), f"study.yaml: {p} does not resolve from {out}"


@pytest.mark.slow
def test_readme_demo_command_runs_from_the_repository_root_with_a_relative_out(relative_out: str) -> None:
    """Runs the README's demo command from the repository root, with a relative --out.

    `--profile quick` is appended to keep this to about a minute: the path bug this guards
    against is in how OUT/study.yaml is written and read, which is the same for every profile
    (the default profile is covered by the same code path; it only has a bigger grid).
    The --out value is replaced by a unique relative folder so a user's demo_out is never touched.
    """
    argv = readme_demo_command()
    assert argv[:3] == [".venv/bin/synthscale", "demo", "--out"] and argv[3] == "demo_out", argv
    argv = _synthscale_executable() + argv[1:3] + [relative_out] + argv[4:] + ["--profile", "quick", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{shlex.join(argv)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    out = ROOT / relative_out
    assert (out / "study" / "report" / "report.md").is_file(), res.stdout
    assert f"{relative_out}/study/report/report" in res.stdout, res.stdout
    _assert_yaml_relative_paths(out)


def test_demo_spec_paths_are_relative_to_the_yaml_folder_whatever_the_current_folder(tmp_path, monkeypatch):
    """write_demo_spec with a relative OUT: the spec loads from any current folder, and after a move."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    out = Path("demo_out")
    corpora = ToyworldCorpora.under(out / "toyworld")
    spec_path = write_demo_spec(out, corpora, "quick", seed=0)
    assert spec_path == out / "study.yaml"

    raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    assert raw["corpora"]["natural"] == "toyworld/natural.jsonl.gz"
    assert {k: s["path"] for k, s in raw["corpora"]["synthetic"].items()} == {
        k: f"toyworld/synthetic/{k}.jsonl.gz" for k in PROFILES["quick"].kinds}
    assert {k: s["style"] for k, s in raw["corpora"]["synthetic"].items()} == {"hq": "rephrase", "textbook": "generate"}
    assert raw["eval"] == {d: f"toyworld/eval/{d}.jsonl.gz" for d in corpora.eval}

    spec, _ = load_spec(spec_path)  # from the folder the demo was run in
    assert spec.corpora.natural.path == str((tmp_path / "cwd" / corpora.natural).resolve())
    monkeypatch.chdir(tmp_path)  # from elsewhere, after moving OUT
    moved = tmp_path / "moved"
    shutil.move(str(tmp_path / "cwd" / out), moved)
    spec, _ = load_spec(moved / "study.yaml")
    assert spec.corpora.natural.path == str((moved / "toyworld" / "natural.jsonl.gz").resolve())
    assert {d: s.path for d, s in spec.eval.items()} == {
        d: str((moved / "toyworld" / "eval" / f"{d}.jsonl.gz").resolve()) for d in corpora.eval}


def test_demo_spec_without_a_folder_writes_absolute_paths(tmp_path, monkeypatch):
    """demo_spec alone (as benchmarks use it) writes absolute paths: right from any spec folder."""
    monkeypatch.chdir(tmp_path)
    corpora = ToyworldCorpora.under(Path("rel") / "toyworld")
    raw = demo_spec(PROFILES["quick"], corpora, seed=0)
    assert raw["corpora"]["natural"] == str(tmp_path / "rel" / "toyworld" / "natural.jsonl.gz")
    synthetic = [s["path"] if isinstance(s, dict) else s for s in raw["corpora"]["synthetic"].values()]
    assert all(Path(p).is_absolute() for p in (*synthetic, *raw["eval"].values()))
