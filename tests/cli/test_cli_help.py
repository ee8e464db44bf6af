"""Every command's --help renders; every option has help; every command named in help texts, docs and
user-facing messages exists; --set works alike on study validate, plan, run and status."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from synthscale.cli import app

from tests.conftest import ROOT, run_cli
from tests.study.tiny import tiny_world, write_tiny_spec  # noqa: F401 (fixture)

ROOT_COMMAND = get_command(app)


def _context(command, name, parent=None):
    return command.context_class(command, info_name=name, parent=parent)


def walk(command=ROOT_COMMAND, path=(), ctx=None):
    """(path, command) of the app and every command and subcommand under it."""
    ctx = ctx or _context(command, "synthscale")
    yield path, command
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            yield from walk(sub, (*path, name), _context(sub, name, ctx))


COMMANDS = list(walk())


def test_the_walk_sees_every_command_group() -> None:
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"", "study run", "study validate", "study plan", "study status", "corpus stats", "tokens encode",
            "toyworld build", "generate", "serve", "export", "report", "fit"} <= paths


def test_every_command_and_subcommand_renders_its_help() -> None:
    runner = CliRunner()
    for path, _ in COMMANDS:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0 and res.exception is None, (path, res.output, res.exception)
        assert "Usage:" in res.output and "Traceback" not in res.output, path


def test_corpus_stats_help_in_a_real_process() -> None:
    res = run_cli("corpus", "stats", "--help")  # rich once read [/CONFIG] here as a closing markup tag
    assert res.returncode == 0 and "hf://ORG/NAME[/CONFIG][:SPLIT]" in res.stdout and not res.stderr


def test_every_option_and_argument_has_help_text() -> None:
    missing = [f"synthscale {' '.join(path)} {'/'.join(p.opts) or p.name}" for path, command in COMMANDS
               for p in command.params if p.name != "help" and not (getattr(p, "help", None) or "").strip()]
    assert not missing, missing


def _help_texts() -> str:
    runner = CliRunner()
    return "\n".join(runner.invoke(app, [*path, "--help"], terminal_width=200).output for path, _ in COMMANDS)


CODE_SPAN = re.compile(r"``([^`\n]+)``|`([^`\n]+)`")
COMMAND = re.compile(r"\bsynthscale((?: +[a-z][a-z0-9-]*)+)")


def _command_mentions(text: str, *, code_only: bool) -> list[str]:
    """The word sequences after `synthscale` in code spans and code blocks (or anywhere)."""
    chunks = [a or b for a, b in CODE_SPAN.findall(text)]
    chunks += [block for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)]
    if not code_only:
        chunks.append(text)
    return [m.group(1).split() for chunk in chunks for m in COMMAND.finditer(chunk)]


def _unknown(words: list[str]) -> str | None:
    """None when ``synthscale WORDS...`` starts with an existing command path, else what is wrong."""
    command, ctx = ROOT_COMMAND, _context(ROOT_COMMAND, "synthscale")
    for i, word in enumerate(words):
        if not hasattr(command, "list_commands"):
            return None  # a command: the rest are its arguments
        sub = command.get_command(ctx, word)
        if sub is None:
            return f"synthscale {' '.join(words[:i + 1])}"
        command, ctx = sub, _context(sub, word, ctx)
    return None


def test_every_command_named_in_help_docs_and_messages_exists() -> None:
    sources = {"help texts": _help_texts()}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        sources[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "src" / "synthscale").rglob("*.py")):
        sources[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    bad = {}
    for name, text in sources.items():
        mentions = _command_mentions(text, code_only=name != "help texts")
        problems = sorted({p for words in mentions if (p := _unknown(words))})
        if problems:
            bad[name] = problems
    assert not bad, bad
    assert any("export" in words for words in _command_mentions(sources["help texts"], code_only=False))


@pytest.mark.parametrize("command", ["validate", "plan", "run", "status"])
def test_set_works_alike_on_validate_plan_run_and_status(tiny_world, tmp_path: Path, command: str) -> None:  # noqa: F811
    spec = write_tiny_spec(tmp_path / "spec.yaml", tiny_world, [2048])
    out = ["--out", str(tmp_path / "study")] if command != "validate" else []
    res = run_cli("study", command, str(spec), *out, "--set", "training.batch_sizee=4")
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"error: {spec}: training.batch_sizee: unknown field (did you mean 'batch_size'?)"], res.stderr
    res = run_cli("study", command, str(spec), *out, "--set", "budgets=[100]", "--set", "name=other")
    if command == "status":  # reads no data: the override renames the study it reports on
        assert res.returncode == 0 and "no planned runs" in res.stdout, res.stderr
    else:
        assert res.returncode == 2 and "budgets: 100 tokens is less than one optimizer step" in res.stderr
        assert not (tmp_path / "study" / "runs").exists()
