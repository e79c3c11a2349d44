"""Each stage reads alone: first-party imports go downward only, and there is no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

# Where each installed package lives in the source tree (pyproject's package-dir).
PACKAGE_DIRS = {"fer_edge": REPO / "fer_edge", "fer_edge.runtime": REPO / "runtime",
                "fer_edge.export": REPO / "export", "fer_edge.benchmarks": REPO / "benchmarks"}

# Layers, lowest first: a module may import its own layer or lower ones, never a higher one.
LAYERS = [
    ("runtime", ["fer_edge.runtime"]),
    ("shared", ["fer_edge", "fer_edge.classes", "fer_edge.data", "fer_edge.metrics", "fer_edge.machine",
                "fer_edge.recognizer", "fer_edge.tta"]),
    ("train", ["fer_edge.train"]),
    ("evaluate", ["fer_edge.evaluate"]),
    ("export", ["fer_edge.export"]),
    ("benchmarks", ["fer_edge.benchmarks"]),
    ("cli", ["fer_edge.cli_args", "fer_edge.commands", "fer_edge.cli", "fer_edge.__main__"]),
]


def modules() -> dict[str, Path]:
    found = {}
    for pkg, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if pkg == "fer_edge" and parts and parts[0] in ("assets",):
                continue
            found[".".join([pkg, *parts])] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """First-party modules ``name`` imports (at any depth of the file), resolved to known module names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("fer_edge"):
                out.add(t)
    return out


def layer_of(name: str) -> int:
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (name == p or name.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    assert level >= 0, f"{name} is in no layer: add it to LAYERS"
    return level


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) - {"fer_edge"} for m, p in mods.items()}


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    return [f"{m} (layer {LAYERS[layer_of(m)][0]}) imports {t} (layer {LAYERS[layer_of(t)][0]})"
            for m, targets in sorted(g.items()) for t in sorted(targets) if layer_of(t) > layer_of(m)]


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``g`` as a path that returns to its start, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(g.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_imports_go_downward_only():
    bad = upward_imports(graph())
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    g = graph()
    assert len(g) > 40 and "fer_edge.commands.run" in g  # the walk saw the whole package
    cycle = find_cycle(g)
    assert cycle is None, " -> ".join(cycle)


def test_the_checks_can_fail():
    """What the old tree had: the CLI modules imported positive_int back from cli.py, training imported evaluate."""
    old = {"fer_edge.cli": {"fer_edge.cli_train"}, "fer_edge.cli_train": {"fer_edge.cli"}}
    assert find_cycle(old) == ["fer_edge.cli", "fer_edge.cli_train", "fer_edge.cli"]
    assert len(upward_imports({"fer_edge.train.engine": {"fer_edge.evaluate"},
                               "fer_edge.benchmarks.bench": {"fer_edge.export.faces"}})) == 1
