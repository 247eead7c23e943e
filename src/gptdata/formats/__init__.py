"""Other systems' formats: ``export_store`` writes a token store for a trainer, ``import_store``
reads pre-tokenized data back into a store. One module per format, each stating its layout:

* ``megatron`` -- Megatron-Core indexed dataset (``.bin`` + ``.idx``), also NeMo and GPT-NeoX
* ``nanogpt``  -- flat uint16 ``train.bin`` / ``val.bin``
* ``llmc``     -- llm.c / modded-nanogpt shards with a 1,024-byte header
* ``hf``       -- Hugging Face ``datasets`` ``save_to_disk`` folders (export only)
"""

from __future__ import annotations

from ._common import FormatError
from .export import FORMATS, export_store
from .importer import IMPORT_FORMATS, import_store

__all__ = ["FORMATS", "IMPORT_FORMATS", "FormatError", "export_store", "import_store"]
