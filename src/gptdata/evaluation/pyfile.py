"""``py:FILE.py:NAME``: your own model class, from your own file, with your own checkpoint.

``NAME`` in ``FILE.py`` is a model object or a zero-argument function returning one; the book's
chapter-4 model is written as

    # mymodel.py
    def make():
        return GPTModel(GPT_CONFIG_124M)

    gptdata eval val.txt --model py:mymodel.py:make --checkpoint model.pth

``--checkpoint`` is read with ``torch.load(weights_only=True)`` (no code in it runs): a plain
state dict (``torch.save(model.state_dict(), ...)``), or a dict holding one under
``model_state_dict`` (the book's chapter 5) or ``model`` (nanoGPT's ``ckpt.pt``). The prefix
``_orig_mod.`` that ``torch.compile`` adds to every key is removed. A checkpoint in a bucket is
read where it lies (``--checkpoint s3://b/runs/ckpt.pt``, with ``--storage-option`` as for SOURCE).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import torch


def _import_file(path: Path, spec: str) -> Any:
    if path.suffix != ".py" or not path.is_file():
        raise FileNotFoundError(f"{spec}: {path} is not a Python file. Write py:FILE.py:NAME.")
    name = f"gptdata_user_model_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    assert loader_spec is not None and loader_spec.loader is not None
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    # The file's own imports (a model.py beside it) resolve from its folder, as `python FILE.py`.
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:
        raise ValueError(f"{spec}: running {path} failed: {type(e).__name__}: {e}") from e
    finally:
        sys.path.pop(0)
    return module


def _required_params(fn: Any) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _state_dict(
    path: str | os.PathLike[str], spec: str, storage_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    from ..storage import Location, is_remote

    path = os.fspath(path)
    remote = Location(path, storage_options=storage_options) if is_remote(path) else None
    if not (remote.is_file() if remote is not None else os.path.isfile(path)):
        raise FileNotFoundError(f"--checkpoint {path}: no such file (for {spec}).")
    try:
        if remote is not None:
            # torch.load seeks about a zip checkpoint: read ranges, 8 MiB at a time, not all.
            with remote.open() as fh:
                state = torch.load(fh, map_location="cpu", weights_only=True)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise  # the storage layer's one line (credentials, endpoint), not "not a checkpoint"
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"--checkpoint {path}: not a weights-only torch checkpoint ({first}). Save it with "
            "torch.save(model.state_dict(), PATH)."
        ) from None
    if isinstance(state, dict):
        for key in ("model_state_dict", "model", "state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError(
            f"--checkpoint {path}: holds {type(state).__name__}, not a state dict (or a dict with "
            "'model_state_dict'). Save it with torch.save(model.state_dict(), PATH)."
        )
    prefix = "_orig_mod."  # torch.compile's wrapper adds it to every key
    return {k.removeprefix(prefix): v for k, v in state.items()}


def load_py(
    where: str,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """``FILE.py:NAME`` -> the model, weights from ``checkpoint`` (a path or a URL, read with
    ``storage_options``) loaded, on ``device``, in eval mode. 'mymodel.py:make' -> make() (a
    zero-argument function), 'net.py:model' -> model."""
    spec = f"py:{where}"
    file, sep, attr = where.rpartition(":")
    if not sep or not file or not attr.isidentifier():
        raise ValueError(f"model spec {spec!r} is not py:FILE.py:NAME (e.g. py:mymodel.py:make).")
    module = _import_file(Path(file), spec)
    if not hasattr(module, attr):
        public = sorted(n for n in vars(module) if not n.startswith("_"))[:10]
        raise ValueError(f"{spec}: {file} has no attribute {attr!r} (it has {public}).")
    obj = getattr(module, attr)
    if isinstance(obj, type) or (
        not isinstance(obj, torch.nn.Module) and callable(obj) and not _required_params(obj)
    ):
        missing = _required_params(obj)
        if missing:
            raise ValueError(
                f"{spec}: {attr} needs arguments ({', '.join(missing)}); NAME must be a model or "
                f"a zero-argument function returning one, e.g. def make(): return {attr}(...)."
            )
        try:
            obj = obj()  # a factory: build the model
        except Exception as e:
            raise ValueError(f"{spec}: calling {attr}() failed: {type(e).__name__}: {e}") from e
    if not callable(obj):
        raise ValueError(
            f"{spec}: {attr} is {type(obj).__name__}, not a model (a callable returning logits)."
        )
    if checkpoint is not None:
        if not isinstance(obj, torch.nn.Module):
            raise ValueError(
                f"{spec}: --checkpoint needs a torch.nn.Module to load into, but {attr} gives "
                f"{type(obj).__name__}."
            )
        state = _state_dict(checkpoint, spec, storage_options)
        try:
            obj.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:3])[:300]
            raise ValueError(f"--checkpoint {checkpoint} does not fit {spec}: {detail}") from None
    if isinstance(obj, torch.nn.Module):
        obj = obj.to(device or torch.device("cpu")).eval()
    return obj
