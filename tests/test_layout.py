"""The shape of src/: imports flow one way (no cycles, no stage importing one downstream of it), and no
module grows past what a reader can hold (MAX_LINES)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "synthscale"
MAX_LINES = 450
# the stages in the order data flows; a package may import only packages earlier in this list (and the
# shared helpers); study orchestrates every stage and cli wires the commands. tokens comes before generate
# because generation counts its output in the training tokenizer's tokens (--target-tokens).
LAYERS = ["errors", "_io", "progress", "devices", "corpus", "tokens", "generate", "toyworld", "diagnostics",
          "model", "train", "evaluate", "laws", "report", "study", "cli"]


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, package)
    return found


def _imports(modules: dict[str, tuple[Path, bool]]) -> dict[str, set[str]]:
    """module -> the synthscale modules it imports (anywhere in the file, type-checking blocks included)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, (path, package) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = name.split(".") if package else name.split(".")[:-1]
                if node.level:
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            edges[name].update(n for n in names if n in modules and n != name)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_of_src_has_no_cycles() -> None:
    cycle = _cycle(_imports(_modules()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_stages_import_only_the_stages_before_them() -> None:
    wrong = []
    for module, targets in _imports(_modules()).items():
        source = module.split(".")[1] if "." in module else ""
        for target in targets:
            dest = target.split(".")[1] if "." in target else ""
            if source and dest and source != dest and source in LAYERS and dest in LAYERS \
                    and LAYERS.index(dest) > LAYERS.index(source):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_check_can_see_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_module_is_longer_than_max_lines() -> None:
    long = {str(p.relative_to(SRC)): n for p, _ in _modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long
