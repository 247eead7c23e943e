"""The package's import graph: no circles, and nothing imports a stage above it in the pipeline.

Data flows sources -> tokenizers -> store -> windows -> loader -> embeddings/evaluation, with the
tools (inspect, plan, demo) and the front doors (cli, the package itself) on top. Each module is
placed in one layer below; a module may import its own layer and the layers below, never above.
Imports inside functions count too: a lazy import is still an edge of the circle it closes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gptdata

PACKAGE = Path(gptdata.__file__).resolve().parent

# Lowest first. A new module goes into the layer of the stage it serves; names that other work
# in progress is adding (evaluation, attention, documents, export/import formats, corpus, book)
# are placed already, so the graph test keeps guarding them when they arrive.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "inputs and fixed files",
        {"_startup", "_layout", "sources", "_readers", "hf_input", "_gpt2files", "samples"}
        | {"instructions"},
    ),
    ("tokenizers", {"dialect", "_fast", "tokenizers", "booktokenizers"}),
    ("store", {"store", "_splitarray", "_manifest"}),
    (
        "writing and reading stores",
        {
            "corpus",
            "prepare",
            "_ray",
            "_executors",
            "_progress",
            "_shards",
            "_sidefolders",
            "_splits",
            "_units",
            "formats",
            "evaldata",
        },
    ),
    ("windows", {"windows", "attention", "documents", "masks", "finetune", "packing"}),
    ("loader", {"loader", "loaderstate"}),
    (
        "model side",
        {"embeddings", "eval", "evaluate", "evaluation", "book"}
        | {"baselines", "models", "compare"},
    ),
    ("tools", {"inspect", "plan", "demo"}),
    ("front doors", {"cli", "_cli_options", "_cli_data", "_cli_model", "__main__", "__init__"}),
]
LAYER_OF = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}


def modules() -> dict[str, list[Path]]:
    """Each top-level module, and each subpackage (formats/) as one node: name -> its files."""
    found = {p.stem: [p] for p in sorted(PACKAGE.glob("*.py"))}
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        found[init.parent.name] = sorted(init.parent.rglob("*.py"))
    return found


def imports_of(path: Path, known: set[str], *, depth: int = 0) -> set[str]:
    """The gptdata modules a file imports anywhere (top level, functions, TYPE_CHECKING).

    ``depth`` is how deep the file sits below the package: 1 for formats/export.py, whose
    ``from ..store import`` names the top-level store and whose ``from ._common`` stays inside.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if 0 < node.level <= depth:
                continue  # inside the same subpackage
            if node.level == depth + 1 or (node.level == 0 and node.module == "gptdata"):
                base = None if node.level == 0 else node.module
            elif node.level == 0 and (node.module or "").startswith("gptdata."):
                base = node.module.split(".")[1]  # type: ignore[union-attr]
            else:
                continue
            if base is not None:
                found.add(base)
            else:  # `from . import x` / `from gptdata import x`: x is a module or a name of __init__
                names = [a.name for a in node.names]
                found.update(n if n in known else "__init__" for n in names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "gptdata":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    if depth == 0:
        found.discard(path.stem)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, paths in mods.items():
        edges[name] = set()
        for path in paths:
            depth = len(path.relative_to(PACKAGE).parts) - 1
            edges[name] |= imports_of(path, set(mods), depth=depth)
        edges[name].discard(name)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None; a plain depth-first search."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, targets in sorted(edges.items()):
        for target in sorted(targets):
            if LAYER_OF[target] > LAYER_OF[mod]:
                bad.append(
                    f"{mod} ({LAYERS[LAYER_OF[mod]][0]}) imports {target} "
                    f"({LAYERS[LAYER_OF[target]][0]})"
                )
    return bad


def test_every_module_is_placed_in_a_layer() -> None:
    unplaced = sorted(set(modules()) - set(LAYER_OF))
    assert not unplaced, (
        f"gptdata modules {unplaced} are not placed in LAYERS of tests/test_imports.py; "
        "add each to the layer of the pipeline stage it belongs to."
    )


def test_no_import_circle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_module_imports_a_stage_above_it() -> None:
    edges = graph()
    edges = {m: {t for t in ts if t in LAYER_OF} for m, ts in edges.items() if m in LAYER_OF}
    assert upward_imports(edges) == []


def test_the_checks_catch_what_they_should() -> None:
    # The circle this test was written for: tokenizers -> _fast -> inspect -> tokenizers.
    edges = {"tokenizers": {"_fast"}, "_fast": {"inspect"}, "inspect": {"tokenizers"}}
    assert find_cycle(edges) == ["_fast", "inspect", "tokenizers", "_fast"]
    assert upward_imports(edges) == ["_fast (tokenizers) imports inspect (tools)"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_are_parsed_in_every_form(tmp_path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        "from . import _fast, __version__\n"
        "from .store import Split\n"
        "import gptdata.loader\n"
        "from gptdata.windows import SlidingWindowDataset\n"
        "def f():\n"
        "    from .inspect import escape\n"
        "import numpy\n"
    )
    known = {"_fast", "store", "loader", "windows", "inspect"}
    assert imports_of(src, known) == {"_fast", "__init__", "store", "loader", "windows", "inspect"}
    sub = tmp_path / "sub.py"  # a file of a subpackage, e.g. formats/export.py
    sub.write_text("from ..store import Split\nfrom ._common import x\nfrom .. import loader\n")
    assert imports_of(sub, known, depth=1) == {"store", "loader"}
