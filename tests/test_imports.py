"""The package's import graph: stages in pipeline order, arrows only downward, no circles.

Data flows tokenizers -> store -> prepare (with the one source reader) -> formats -> windows
(dataset, documents, loader) -> evaluation -> inspect, with object storage (remote locations, the
shard cache, the remote commit) beneath the store, and the stand-alone tools (embeddings, book,
demo) and the front doors (cli, the package itself) on top. A module may import its own stage
and the stages before it, never one after it. Imports inside functions count too: a lazy import is
still an edge of the circle it closes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gptdata

PACKAGE = Path(gptdata.__file__).resolve().parent

# Lowest first: each stage is a subpackage of gptdata or a top-level module.
STAGES: list[tuple[str, set[str]]] = [
    ("fixed files", {"_startup", "samples"}),
    ("object storage", {"storage"}),
    ("tokenizers", {"tokenizers"}),
    ("store", {"store"}),
    ("prepare", {"prepare"}),
    ("formats", {"formats"}),
    ("windows", {"windows"}),
    ("evaluation", {"evaluation"}),
    ("inspect", {"inspect"}),
    ("model side", {"embeddings", "book"}),
    ("tools", {"demo"}),
    ("front doors", {"cli", "__main__", "__init__"}),
]
STAGE_OF = {name: i for i, (_, names) in enumerate(STAGES) for name in names}


def modules() -> dict[str, Path]:
    """Every module as its dotted name below gptdata: 'store.tokenstore', 'cli', '__init__'."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def stage(module: str) -> str:
    """The stage a module belongs to: its subpackage, or itself at the top level."""
    return module.split(".")[0]


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The gptdata modules a file imports anywhere (top level, functions, TYPE_CHECKING).

    ``name`` is the file's dotted module name ('formats.export'); a package's own __init__ is
    named by the package ('cli'). ``from . import x`` names module x when x is one, else the
    package itself.
    """
    is_package = path.name == "__init__.py"
    package = name.split(".") if is_package else name.split(".")[:-1]
    if name == "__init__":
        package = []
    found: set[str] = set()

    def add(base: list[str], names: list[str]) -> None:
        for n in names:
            sub = ".".join([*base, n])
            if sub in known:
                found.add(sub)
            else:
                found.add(".".join(base) or "__init__")

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                if len(base) < len(package) - node.level + 1:
                    continue
            elif node.module == "gptdata" or (node.module or "").startswith("gptdata."):
                base = []
                node_module = node.module.split(".", 1)[1] if "." in node.module else None
                if node_module:
                    base = node_module.split(".")
                add(base, [a.name for a in node.names])
                continue
            else:
                continue
            if node.module:
                base = [*base, *node.module.split(".")]
            add(base, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "gptdata":
                    found.add(".".join(parts[1:]) or "__init__")
    found.discard(name)
    # `from .store import x` where x is a name of store/__init__: the edge is to the package.
    return {m if m in known else m.rsplit(".", 1)[0] if "." in m else m for m in found}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


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
    """Every edge from a module into a later stage, as 'a (stage) imports b (stage)'."""
    bad = []
    for mod, targets in sorted(edges.items()):
        for target in sorted(targets):
            if STAGE_OF[stage(target)] > STAGE_OF[stage(mod)]:
                bad.append(
                    f"{mod} ({STAGES[STAGE_OF[stage(mod)]][0]}) imports {target} "
                    f"({STAGES[STAGE_OF[stage(target)]][0]})"
                )
    return bad


def test_every_module_is_in_a_stage() -> None:
    unplaced = sorted({stage(m) for m in modules()} - set(STAGE_OF))
    assert not unplaced, (
        f"gptdata modules or packages {unplaced} are not placed in STAGES of "
        "tests/test_imports.py; add each to the stage of the pipeline it belongs to."
    )


def test_no_import_circle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_no_module_imports_a_later_stage() -> None:
    assert upward_imports(graph()) == []


def test_the_graph_sees_the_real_edges() -> None:
    edges = graph()
    assert "store.tokenstore" in edges["prepare.driver"]
    assert "tokenizers" in edges["store.tokenstore"]
    assert "cli.data" in edges["cli.entry"]  # `from . import data` names the module
    assert "prepare.corpus" in edges["windows.dataset"]


def test_the_checks_catch_what_they_should() -> None:
    # The circle the first version of this test was written for: tokenizers -> inspect -> ...
    edges = {"tokenizers.base": {"inspect.pairs"}, "inspect.pairs": {"tokenizers.base"}}
    assert find_cycle(edges) == ["inspect.pairs", "tokenizers.base", "inspect.pairs"]
    assert upward_imports(edges) == ["tokenizers.base (tokenizers) imports inspect.pairs (inspect)"]
    assert upward_imports({"store.x": {"prepare.y"}}) == [
        "store.x (store) imports prepare.y (prepare)"
    ]
    assert upward_imports({"prepare.y": {"store.x", "prepare.z"}}) == []
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_are_parsed_in_every_form(tmp_path) -> None:
    known = {"store", "store.tokenstore", "tokenizers", "tokenizers.fast", "windows.loader"}
    known |= {"formats", "formats.export", "formats._common", "__init__"}
    src = tmp_path / "m.py"  # as if it were gptdata/formats/export.py
    src.write_text(
        "from .. import __version__\n"
        "from ..store.tokenstore import TokenStore\n"
        "from ._common import x\n"
        "import gptdata.windows.loader\n"
        "from gptdata.tokenizers import fast\n"
        "def f():\n"
        "    from ..store import dtype_for\n"
        "import numpy\n"
    )
    assert imports_of(src, "formats.export", known) == {
        "__init__",
        "store.tokenstore",
        "formats._common",
        "windows.loader",
        "tokenizers.fast",
        "store",
    }


def test_no_module_needs_unicodedata_to_compile() -> None:
    """A ``\\N{...}`` escape makes the compiler import ``unicodedata``; with no bytecode cache
    (PYTHONDONTWRITEBYTECODE), a Ctrl-C that lands during that import is turned into a
    SyntaxError, which ``quiet_interrupt`` cannot tell from a real one (seen in CI)."""
    import subprocess
    import sys

    root = Path(gptdata.__file__).parent
    check = (
        "import sys, pathlib\n"
        "sys.modules['unicodedata'] = None\n"  # any import of it now fails
        "bad = []\n"
        f"for p in sorted(pathlib.Path({str(root)!r}).rglob('*.py')):\n"
        "    try:\n"
        "        compile(p.read_text(encoding='utf-8'), str(p), 'exec')\n"
        "    except SyntaxError as e:\n"
        "        bad.append(f'{p.name}:{e.lineno}')\n"
        "print(' '.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [], "use \\U escapes instead of \\N{...}: " + out.stdout
