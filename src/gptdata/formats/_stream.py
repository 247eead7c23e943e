"""Documents of a flat token stream, written to a store without holding a whole document.

nanoGPT and llm.c files are one stream cut at end-of-text; a file with none is one document
as long as the file. ``pieces`` hands the stream out block by block, flagging where documents
end, and ``DocumentFeed`` appends the pieces to prepare's shard writer, so memory holds one
read block whatever the documents' lengths (a 100 MB file without end-of-text: measured in
``tests/test_trust_formats.py``).

    [5, 6, E, 7] in blocks [5, 6, E], [7] -> ([5, 6], True), ([7], False), ([], True)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..store.shards import _PartWriter

_EMPTY = np.empty(0, dtype=np.int64)


def pieces(blocks: Iterator[np.ndarray], eot_id: int) -> Iterator[tuple[np.ndarray, bool]]:
    """(piece, ends_a_document) for a stream cut at ``eot_id``; empty documents are dropped.

    Joining the pieces up to each True gives what ``split_on`` yields, document by document.
    """
    open_doc = False  # a document has started and not yet ended
    for block in blocks:
        start = 0
        for cut in np.flatnonzero(block == eot_id).tolist():
            piece = block[start:cut]
            if len(piece) or open_doc:
                yield piece, True
            open_doc, start = False, cut + 1
        if start < len(block):
            yield block[start:], False
            open_doc = True
    if open_doc:
        yield _EMPTY, True


class DocumentFeed:
    """Appends documents to a ``_PartWriter`` piece by piece.

    Where a document goes is decided at its first piece, as ``_PartWriter.add`` decides for a
    whole one: a new shard when the current one cannot take it. A document longer than a read
    block may therefore make its shard longer than ``shard_tokens``, as a long document given
    whole to ``add`` does (a document never spans shards).
    """

    def __init__(self, writer: _PartWriter) -> None:
        self.writer = writer
        self.in_doc = False

    def add(self, ids: np.ndarray, *, last: bool) -> None:
        w = self.writer
        if not self.in_doc:
            if w._fh is not None and w._tokens + 1 + len(ids) > w.shard_tokens:
                w._close()
            if w._fh is None:
                w._open()
            if w._tokens:
                w._write(w.sep)
                w._tokens += 1
            self.in_doc = True
        w._write(ids.tobytes())
        w._tokens += len(ids)
        if last:
            w._ends.append(w._tokens)
            self.in_doc = False
