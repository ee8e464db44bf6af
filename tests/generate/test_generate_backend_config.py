"""generate/backends/config: each backend's settings declared once, as a typed config, from which come the
`synthscale generate` options, the checks of what a user gives, and the resolved config next to the outputs."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.main import get_command

from synthscale.cli import app
from synthscale.errors import ConfigError
from synthscale.generate.backends.config import (BACKEND_CONFIGS, LlamaCppConfig, OpenAIConfig, TransformersConfig,
                                                 backend_config, cli_options)
from synthscale.generate.commands import generate_command, resolve_backend_config

from tests.conftest import run_cli


def generate_options() -> dict[str, object]:
    command = get_command(app).commands["generate"]
    return {opt: p for p in command.params for opt in p.opts}


def test_every_config_field_is_one_generate_option_with_the_backends_that_take_it_in_its_help():
    options = generate_options()
    declared = {f.name: kind for kind, cls in BACKEND_CONFIGS.items() for f in dataclasses.fields(cls)}
    assert {o.name for o in cli_options()} == set(declared)
    for o in cli_options():
        param = options[o.flag]
        assert param.name == o.name and param.default is None  # unset: the backend's own default applies
        assert all(kind in param.help for kind in o.backends), (o.flag, param.help)
    assert set(cli_options()[0].backends) == {"transformers", "vllm", "openai"}  # --revision is shared
    assert "--model-batch-size" in options and "--base-url" in options and "--max-model-len" in options


def test_options_are_checked_against_the_chosen_backend_in_one_line_naming_the_option():
    assert backend_config("transformers", {"model_batch_size": 4, "threads": None}) == \
        TransformersConfig(model_batch_size=4)
    assert backend_config("llamacpp", {"max_model_len": 2048}) == LlamaCppConfig(max_model_len=2048)
    cases = [("openai", {"device": "cpu"}, "--device applies to the transformers backend(s), not openai"),
             ("toyworld", {"chat": "none"}, "--chat applies to the transformers and llamacpp and vllm backend(s)"),
             ("transformers", {"model_batch_size": 0}, "--model-batch-size (transformers backend): must be >= 1"),
             ("vllm", {"dtype": "fp8"}, "--dtype (vllm backend): expected one of auto, float32"),
             ("openai", {"timeout": "soon"}, "--timeout (openai backend): expected a number"),
             ("openai", {"concurrency": 2.5}, "--concurrency (openai backend): expected int"),
             ("llamafile", {}, "unknown backend 'llamafile'")]
    pytest.importorskip("synthscale.toyworld.backend")  # registers toyworld
    for kind, given, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            backend_config(kind, given)
    config = OpenAIConfig(base_url="http://127.0.0.1:1/v1")
    assert resolve_backend_config("openai", config) is config
    with pytest.raises(ConfigError, match="a config of the openai backend, not vllm"):
        resolve_backend_config("vllm", config)


def test_the_cli_refuses_a_misplaced_option_in_one_line(tmp_path):
    res = run_cli("generate", "--input", str(tmp_path / "x.jsonl"), "--style", "hq", "--backend", "toyworld",
                  "--out", str(tmp_path / "o"), "--model-batch-size", "4")
    assert res.returncode == 2 and res.stderr.strip() == \
        "error: --model-batch-size applies to the transformers backend(s), not toyworld"


def test_the_resolved_backend_config_is_written_next_to_the_outputs(tmp_path):
    toyworld = pytest.importorskip("synthscale.toyworld")
    world = toyworld.build_toyworld(tmp_path / "world", toyworld.ToyworldConfig.preset("tiny", seed=3),
                                    progress=False)
    summary = generate_command(str(world.natural), "hq", "toyworld", None, str(tmp_path / "out"), max_docs=2,
                               gates="off", backend_options={}, progress=False)
    assert summary["state"] == "complete"
    settings = json.loads((tmp_path / "out" / "generate_config.json").read_text())["settings"]
    assert settings["backend"]["backend"] == "toyworld"
    with pytest.raises(ConfigError, match="--base-url applies to the openai backend"):
        generate_command(str(world.natural), "hq", "toyworld", None, str(tmp_path / "o2"),
                         backend_options={"base_url": "http://127.0.0.1:1/v1"}, progress=False)
