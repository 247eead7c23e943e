"""Instruction examples: reading them, and the prompt and response text each one becomes.

Inputs: a ``.json`` file holding a list of objects (the book's chapter-7 format), ``.jsonl`` /
``.jsonl.gz``, ``.parquet``, ``.arrow`` and ``datasets`` ``save_to_disk`` folders, or a list of
dicts. Fields ``instruction``, ``input`` (optional, may be empty) and ``output``, renamable with
``fields={"instruction": "prompt", "output": "completion"}`` (``parse_fields`` reads the CLI's
``instruction=prompt,output=completion``).

Chat records (``messages``: a list of ``{"role", "content"}``) map onto the same three fields:
the last message must be the assistant's (it is ``output``) and the one before it the user's
(``instruction``); any earlier messages (a system message, earlier turns) are context, written
into ``input`` one per line as ``role: content``, and are never trained on.

Templates (``TEMPLATES``): ``alpaca`` is the book's ``format_input`` plus its response text,
``phi3`` the book's exercise 7.1; a template file holds ``{instruction}``, ``{input}`` and
``{output}``, and the text before ``{output}`` is the prompt (a file without ``{output}`` is
refused). The book encodes ``prompt + response`` in one call and takes the prompt's token count
as ``len(encode(prompt))`` (exercise 7.2); so does gptdata. Measured with GPT-2 BPE: the prompt's
tokens are the start of the example's for the whole shipped set and for text ending in spaces,
tabs or ``\r``; the one merge found is a prompt ending in ``\n`` before alpaca's ``\n\n###``
(``\n`` + ``\n\n`` -> one ``\n\n\n`` token): the shared prefix is then one token shorter
than the count, and the count stays the book's, so the same targets are masked as in the book.
A file template should end its prompt where a token must end (a newline, not ``"A: "``, whose
space joins the answer's first word).

    >>> p, r = format_example({"instruction": "Say hi.", "input": "", "output": "Hi!"})
    >>> p[-26:], r
    ('\\n\\n### Instruction:\\nSay hi.', '\\n\\n### Response:\\nHi!')
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..storage import Location, is_remote
from . import hf_input
from .readers import Options, _jsonl_lines, parquet_file
from .sources import InputError, Piece

Errors = Literal["strict", "skip"]
FIELDS = ("instruction", "input", "output")

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
)


@dataclass(frozen=True)
class Template:
    """How an example becomes (prompt, response) text.

    ``Template.from_text("Q: {instruction}\\nA: {output}")`` -> prompt "Q: ...\\nA: ", response
    the output; the built-in ``alpaca`` and ``phi3`` add their input block only when input is
    non-empty, as the book does.
    """

    name: str
    text: str | None = None  # a file template's text; None for the built-ins

    @classmethod
    def from_text(cls, text: str, *, name: str = "file") -> Template:
        if text.count("{output}") != 1:
            raise ValueError(
                f"template {name!r} must hold '{{output}}' exactly once (it has "
                f"{text.count('{output}')}): the text before it is the prompt, the rest the "
                "response. Add '{output}' where the answer goes."
            )
        return cls(name, text)

    def render(self, instruction: str, input: str, output: str) -> tuple[str, str]:
        """(prompt, response) for one example."""
        if self.name == "alpaca":  # the book's format_input, then its response_text
            prompt = f"{ALPACA_PREAMBLE}\n\n### Instruction:\n{instruction}"
            prompt += f"\n\n### Input:\n{input}" if input else ""
            return prompt, f"\n\n### Response:\n{output}"
        if self.name == "phi3":  # the book's exercise 7.1
            prompt = f"<|user|>\n{instruction}" + (f"\n{input}" if input else "")
            return prompt, f"\n<|assistant|>:\n{output}"
        assert self.text is not None
        head, tail = self.text.split("{output}")
        values = {"instruction": instruction, "input": input}
        # str.replace, not str.format: braces in the data or template stay as they are.
        for key, value in values.items():
            head, tail = head.replace("{" + key + "}", value), tail.replace("{" + key + "}", value)
        return head, output + tail


TEMPLATES = {"alpaca": Template("alpaca"), "phi3": Template("phi3")}


def get_template(spec: str | os.PathLike[str] | Template = "alpaca") -> Template:
    """``"alpaca"``, ``"phi3"``, a template file's path, or a Template -> the Template."""
    if isinstance(spec, Template):
        return spec
    text = os.fspath(spec)
    if text in TEMPLATES:
        return TEMPLATES[text]
    path = Path(text)
    if not path.is_file():
        raise ValueError(
            f"unknown template {text!r}: use 'alpaca', 'phi3', or the path of a text file with "
            "{instruction}, {input} and {output}."
        )
    return Template.from_text(path.read_text(encoding="utf-8"), name=text)


def parse_fields(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """The field names to read: ``"instruction=prompt,output=completion"`` -> a full mapping.

    "output=completion" -> {"instruction": "instruction", "input": "input", "output": "completion"}
    """
    names = {f: f for f in FIELDS}
    if spec is None:
        return names
    pairs = spec.items() if isinstance(spec, Mapping) else _pairs(spec)
    for ours, theirs in pairs:
        if ours not in FIELDS:
            raise ValueError(
                f"unknown field {ours!r} in fields; rename any of {', '.join(FIELDS)}, e.g. "
                "instruction=prompt,output=completion."
            )
        if not isinstance(theirs, str) or not theirs:
            raise ValueError(f"field {ours!r} needs a column name, got {theirs!r}.")
        names[ours] = theirs
    return names


def _pairs(spec: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        ours, eq, theirs = item.partition("=")
        if not eq:
            raise ValueError(
                f"--fields item {item!r} is not NAME=COLUMN; write e.g. "
                "instruction=prompt,output=completion."
            )
        out.append((ours.strip(), theirs.strip()))
    return out


@dataclass
class InstructionStats:
    """What reading did: examples kept, bad records skipped (``errors="skip"``)."""

    examples: int = 0
    skipped: int = 0


def to_fields(record: Any, names: Mapping[str, str], where: str) -> tuple[str, str, str]:
    """One record -> (instruction, input, output), or InputError naming ``where``."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: a {type(record).__name__}, not an object.")
    if "messages" in record and names["output"] not in record:
        return _chat(record["messages"], where)
    values = []
    for ours in FIELDS:
        theirs = names[ours]
        value = record.get(theirs, "" if ours == "input" else None)
        if value is None and ours == "input":
            value = ""  # a null input (Parquet, Arrow) is an absent one
        if value is None:
            raise InputError(
                f"{where}: no field '{theirs}' ({ours}). Rename fields with "
                f"--fields {ours}=COLUMN, or fix the record."
            )
        if not isinstance(value, str):
            raise InputError(f"{where}: field '{theirs}' is {type(value).__name__}, not a string.")
        values.append(value)
    if not values[0].strip():
        raise InputError(f"{where}: empty instruction ('{names['instruction']}').")
    return values[0], values[1], values[2]


def _chat(messages: Any, where: str) -> tuple[str, str, str]:
    """A chat: last assistant turn = output, the user turn before it = instruction, rest = input."""
    ok = isinstance(messages, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    )
    if not ok:
        raise InputError(
            f"{where}: 'messages' must be a list of {{'role': str, 'content': str}} objects."
        )
    roles = [m["role"] for m in messages]
    if len(messages) < 2 or roles[-1] != "assistant" or roles[-2] != "user":
        raise InputError(
            f"{where}: a chat must end with a user turn then an assistant turn (roles: "
            f"{', '.join(roles) or 'none'})."
        )
    if not messages[-2]["content"].strip():
        raise InputError(f"{where}: empty instruction (the last user turn).")
    context = "\n".join(f"{m['role']}: {m['content']}" for m in messages[:-2])
    return messages[-2]["content"], context, messages[-1]["content"]


def _remote_folder(path: str, opts: Options) -> list[str] | None:
    """The data files of a ``save_to_disk`` prefix on object storage; None for one object."""
    root = Location(path, storage_options=opts)
    below = root.files()
    if not below:
        return None  # one object (or nothing, which reading it then says)
    files = hf_input.remote_hf_files(root, below)
    if files is None:
        raise InputError(f"{path}: a prefix that is not a datasets save_to_disk folder.")
    return files


def _json_text(path: str, opts: Options) -> str:
    if is_remote(path):  # a JSON list is parsed whole either way: the object is read whole
        loc = Location(path, storage_options=opts)
        return loc.read_bytes(limit=loc.size() + 1).decode("utf-8-sig")
    return Path(path).read_text(encoding="utf-8-sig")  # a BOM is no part of it


def _records(path: str, opts: Options = None) -> Iterator[tuple[str, Any]]:
    """(where, record) for every record of one file or save_to_disk folder (local or a URL)."""
    name = path.lower()
    remote = is_remote(path)
    folder: list[str] | None = None  # the data files of a save_to_disk folder
    if remote:
        folder = _remote_folder(path, opts)
    elif os.path.isdir(path):
        folder = hf_input.hf_data_files(path)
        if folder is None:
            raise InputError(f"{path}: a folder that is not a datasets save_to_disk folder.")
    if folder is not None:
        row = 0
        for file in folder:
            for batch in hf_input._batches(file, opts):
                for record in batch.to_pylist():
                    yield f"{path}: row {row}", record
                    row += 1
    elif name.endswith(".json"):
        try:
            data = json.loads(_json_text(path, opts))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a JSON file ({exc}).") from None
        if not isinstance(data, list):
            raise InputError(
                f"{path}: holds a {type(data).__name__}; expected a list of objects "
                "(the book's instruction-data.json). For one object per line use .jsonl."
            )
        for i, record in enumerate(data):
            yield f"{path}: record {i}", record
    elif name.endswith((".jsonl", ".jsonl.gz")):
        kind = "jsonl.gz" if name.endswith(".gz") else "jsonl"
        size = Location(path, storage_options=opts).size() if remote else os.path.getsize(path)
        piece = Piece(path, kind, 0, size)  # type: ignore[arg-type]
        for line_no, (_, line) in enumerate(_jsonl_lines(piece, opts), start=1):
            if line.strip():
                try:
                    yield f"{path}:{line_no}", json.loads(line)
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise InputError(f"{path}:{line_no}: malformed JSON ({exc}).") from None
    elif name.endswith(".parquet"):
        for i, record in enumerate(parquet_file(path, opts).read().to_pylist()):
            yield f"{path}: row {i}", record
    elif name.endswith(".arrow"):
        row = 0
        for batch in hf_input._batches(path, opts):
            for record in batch.to_pylist():
                yield f"{path}: row {row}", record
                row += 1
    else:
        raise InputError(
            f"{path}: instruction data must be .json (a list), .jsonl, .jsonl.gz, .parquet, "
            ".arrow or a datasets folder."
        )


def read_examples(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    *,
    fields: str | Mapping[str, str] | None = None,
    errors: Errors = "strict",
    stats: InstructionStats | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[tuple[str, str, str]]:
    """(instruction, input, output) of every good record, in order.

    ``errors="skip"`` drops bad records and counts them in ``stats.skipped``. ``source`` may be
    a URL (``s3://bucket/sft/data.jsonl``), read with fsspec's ``storage_options``.

        [{"instruction": "Add 2 and 3.", "output": "5"}] -> ("Add 2 and 3.", "", "5")
    """
    if errors not in ("strict", "skip"):
        raise ValueError(f"errors={errors!r} must be 'strict' or 'skip'.")
    names = parse_fields(fields)
    stats = stats if stats is not None else InstructionStats()
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not is_remote(path) and not os.path.exists(path):
            raise InputError(f"instruction data '{path}' does not exist. Check the path.")
        records: Iterator[tuple[str, Any]] = _records(path, storage_options)
    else:
        records = ((f"record {i}", r) for i, r in enumerate(source))
    for where, record in records:
        try:
            example = to_fields(record, names, where)
        except InputError:
            if errors == "strict":
                raise
            stats.skipped += 1
            continue
        stats.examples += 1
        yield example


def format_example(
    record: Mapping[str, Any],
    *,
    template: str | os.PathLike[str] | Template = "alpaca",
    fields: str | Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """One record -> (prompt, response) text; ``encode(prompt + response)`` is the example."""
    return get_template(template).render(*to_fields(dict(record), parse_fields(fields), "record"))
