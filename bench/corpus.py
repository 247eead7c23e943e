"""A deterministic benchmark corpus of real text, from the running Python's standard library.

Nothing beside the checkout is needed: every machine that runs the benchmarks has Python, and its
standard library is some 30 MB of real text that people wrote (code, comments, and English prose
in the docstrings). Files are read in sorted order and cycled until the size is reached; the same
Python version always writes the same bytes.

    python bench/corpus.py --size 100MB --out corpus/               # one .txt per source file
    python bench/corpus.py --size 100MB --out corpus.jsonl --jsonl  # one {"text": ...} per line
    python bench/corpus.py --size 1MB --out prose.txt --prose       # docstrings only, one file

``--prose`` keeps only the docstrings (English sentences, the kind of text a book corpus holds),
one document per module. On the second and later passes over the library each document starts
with a line naming the pass, so no two documents are byte-identical (caches and deduplication
would otherwise see the same text again).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ has a tokenize.py, which would shadow the standard library's tokenize module if bench/
# stayed first on sys.path (as Python puts a script's folder): search it last instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.append(sys.path.pop(0))

import argparse  # noqa: E402
import ast  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sysconfig  # noqa: E402
from collections.abc import Iterator  # noqa: E402

UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}


def parse_size(text: str) -> int:
    """'20MB' -> 20_000_000; '1.5KB' -> 1500; '300' -> 300."""
    upper = text.strip().upper()
    unit = next((u for u in UNITS if upper.endswith(u)), "")
    try:
        value = float(upper[: len(upper) - len(unit)]) * UNITS.get(unit, 1)
    except ValueError:
        raise ValueError(f"size {text!r} is not a size: write e.g. 20MB, 300KB or 1GB.") from None
    if value <= 0:
        raise ValueError(f"size {text!r} must be positive, e.g. 20MB.")
    return int(value)


def library_files() -> list[tuple[str, Path]]:
    """(name relative to the standard library, path) of every .py file, sorted by name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = [
        (path.relative_to(root).as_posix(), path)
        for path in root.rglob("*.py")
        if "site-packages" not in path.parts and "dist-packages" not in path.parts
    ]
    return sorted(found)


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # a few test files are deliberately not UTF-8
        return None
    return text if text.strip() else None


def _docstrings(text: str) -> str | None:
    """The module's, classes' and functions' docstrings, in source order, as paragraphs."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):  # test files with deliberately broken syntax
        return None
    docs = [
        ast.get_docstring(node)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    kept = [d.strip() for d in docs if d and d.strip()]
    return "\n\n".join(kept) + "\n" if kept else None


def documents(*, prose: bool = False) -> Iterator[tuple[str, str]]:
    """(name, text) of every library file (or its docstrings), in order, cycled forever."""
    files = library_files()
    if not files:
        raise SystemExit("no standard-library .py files found: is this a full Python install?")
    cycle = 0
    while True:
        for name, path in files:
            text = _read(path)
            if text is not None and prose:
                text = _docstrings(text)
            if text is None:
                continue
            if cycle:
                text = f"# pass {cycle + 1} over the standard library: {name}\n" + text
            yield name, text
        cycle += 1


def write_corpus(
    out: str | os.PathLike[str], *, size: int, form: str = "folder", prose: bool = False
) -> tuple[int, int]:
    """Write about ``size`` bytes; ``form`` is folder (.txt files), jsonl or single (one .txt).

    Written under a temporary name and renamed, so a half-written corpus is never taken as
    whole. Returns (bytes, documents).
    """
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.is_dir():  # left by an interrupted run
        shutil.rmtree(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = n = 0
    sink = open(tmp, "w", encoding="utf-8") if form != "folder" else None  # noqa: SIM115
    try:
        for name, text in documents(prose=prose):
            if written >= size:
                break
            if form == "jsonl":
                line = json.dumps({"id": f"{n:07d}", "source": name, "text": text}) + "\n"
                sink.write(line)  # type: ignore[union-attr]
                written += len(line.encode("utf-8"))
            elif form == "single":
                sink.write(text if n == 0 else "\n" + text)  # type: ignore[union-attr]
                written += len(text.encode("utf-8")) + (n > 0)
            else:
                sub = tmp / f"{n // 1000:04d}"  # 1,000 files per folder
                sub.mkdir(parents=True, exist_ok=True)
                (sub / f"{n:07d}.txt").write_text(text, encoding="utf-8")
                written += len(text.encode("utf-8"))
            n += 1
    finally:
        if sink is not None:
            sink.close()
    os.replace(tmp, out)
    return written, n


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size", default="100MB", help="about how much to write: 20MB, 1GB, 300KB")
    ap.add_argument(
        "--out", required=True, help="a folder (default), or a file with --jsonl/--single"
    )
    form = ap.add_mutually_exclusive_group()
    form.add_argument("--jsonl", action="store_true", help='one {"text": ...} line per document')
    form.add_argument("--single", action="store_true", help="all documents in one text file")
    ap.add_argument("--prose", action="store_true", help="docstrings only: English prose")
    args = ap.parse_args()
    if os.path.exists(args.out):
        sys.exit(f"error: {args.out} exists; remove it or choose another --out.")
    kind = "jsonl" if args.jsonl else "single" if args.single else "folder"
    written, n = write_corpus(args.out, size=parse_size(args.size), form=kind, prose=args.prose)
    print(f"wrote {args.out}: {written:,} bytes, {n:,} documents (Python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
