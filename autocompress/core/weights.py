"""Reading the checkpoints people have: plain state dicts and the dicts scripts wrap them in.

Always ``torch.load(..., weights_only=True)``: a file is data, never code. Accepted:

- ``torch.save(model.state_dict(), path)``;
- a dict holding one under ``state_dict`` (Lightning), ``model`` / ``model_state_dict``
  / ``state_dict_ema`` / ``model_ema`` / ``net`` (timm and common training scripts);
- keys with a ``module.`` (DataParallel / DDP) or ``_orig_mod.`` (``torch.compile``)
  prefix, or one wrapper attribute prefix (Lightning's ``model.`` …), stripped when
  that is what makes them match the architecture.

A whole pickled model (``torch.save(model)``) is refused with the two lines that
save its state dict instead.
"""

from __future__ import annotations

import argparse
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocompress.core.errors import CheckpointError

#: Keys under which training scripts keep the model's weights, most specific first.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "model_ema", "net")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_PREFIXES = ("module.", "_orig_mod.")


def plain_message(text: str) -> str:
    """``text`` without terminal escape codes (torch colours some of its messages)."""
    return _ANSI.sub("", text)


def read_weights_file(path: str | os.PathLike[str], *, what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with messages a user can act on.

    ``what`` names the file in messages (``checkpoint``, ``student file``).

    Raises:
        CheckpointError: missing, unreadable, or a pickled Python object (e.g. a whole model).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} does not exist")
    try:
        # argparse.Namespace (timm keeps its training args in the checkpoint) is plain data.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = plain_message(str(exc))
        found = _GLOBAL.search(text)
        if found:
            name = found.group(1)
            raise CheckpointError(
                f"{str(path)!r} cannot be read as weights: it holds a pickled Python object "
                f"({name}), most likely a whole "
                "model saved with torch.save(model); autocompress reads weights only "
                "(weights_only=True: unpickling runs code)",
                hint="Save the weights instead, in the script where your trained model lives:\n"
                "    model = ...  # your trained nn.Module\n"
                f"    torch.save(model.state_dict(), {str(path.with_suffix('')) + '_state.pt'!r})\n"
                "then pass that file as --teacher, with --model naming the architecture.",
            ) from None
        first = _first_line_without_advice(text)
        raise CheckpointError(
            f"{what} {str(path)!r} cannot be read (corrupt or not a PyTorch file): "
            f"{type(exc).__name__}: {first}"
        ) from None


def _first_line_without_advice(text: str) -> str:
    """The first line of a torch load error, without torch's advice to unpickle code."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    for marker in ("weights_only", "Weights only load failed", "re-running `torch.load`"):
        if marker in line:
            return "not a weights-only checkpoint"
    return line


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) for k in value)
        and any(isinstance(v, torch.Tensor) for v in value.values())
        and all(isinstance(v, (torch.Tensor, int, float)) or v is None for v in value.values())
    )


def find_state_dict(payload: Any, source: str) -> tuple[dict[str, Any], str]:
    """The state dict inside ``payload`` and where it was (``""`` for the payload itself).

    Raises:
        CheckpointError: no state dict found (names the top-level keys).
    """
    if _is_state_dict(payload):
        return payload, ""
    if isinstance(payload, dict):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(payload.get(key)):
                return payload[key], key
        keys = ", ".join(repr(k) for k in list(payload)[:10])
        raise CheckpointError(
            f"checkpoint {source!r} holds no state dict (its keys: {keys}); looked for the "
            f"weights themselves and under {', '.join(STATE_DICT_KEYS)}",
            hint="Save one with torch.save(model.state_dict(), path).",
        )
    raise CheckpointError(
        f"checkpoint {source!r} holds a {type(payload).__name__}, not a state dict",
        hint="Save one with torch.save(model.state_dict(), path).",
    )


def _strip(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    out = OrderedDict(
        (k[len(prefix) :] if k.startswith(prefix) else k, v) for k, v in state.items()
    )
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        out._metadata = OrderedDict(  # type: ignore[attr-defined]
            (k[len(prefix) :] if k.startswith(prefix) else k, v) for k, v in metadata.items()
        )
    return out


def match_keys(state: dict[str, Any], model: nn.Module) -> tuple[dict[str, Any], list[str]]:
    """``state`` with wrapper prefixes stripped where that matches ``model`` better.

    Returns the state and the prefixes stripped (in order).
    """
    own = set(model.state_dict())
    stripped: list[str] = []

    def score(candidate: dict[str, Any]) -> int:
        return len(own & set(candidate))

    changed = True
    while changed:
        changed = False
        options = list(_PREFIXES)
        firsts = {k.split(".", 1)[0] for k in state}
        if len(firsts) == 1 and all("." in k for k in state):
            options.append(f"{next(iter(firsts))}.")
        for prefix in options:
            if any(k.startswith(prefix) for k in state):
                candidate = _strip(state, prefix)
                if score(candidate) > score(state):
                    state, changed = candidate, True
                    stripped.append(prefix)
                    break
    return state, stripped


def with_metadata(state: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """``state`` with the module versions of ``model`` where the file carries none.

    Some modules (torchvision's MNASNet …) read a version from the state dict's
    ``_metadata``; a dict rebuilt by a comprehension has lost it.
    """
    if getattr(state, "_metadata", None) is not None:
        return state
    out = OrderedDict(state)
    own = getattr(model.state_dict(), "_metadata", None)
    if own is not None:
        out._metadata = own  # type: ignore[attr-defined]
    return out


def detached_state(model: nn.Module) -> OrderedDict[str, Any]:
    """``model.state_dict()`` on the CPU, detached, with its ``_metadata`` kept."""
    state = model.state_dict()
    out: OrderedDict[str, Any] = OrderedDict((k, v.detach().cpu()) for k, v in state.items())
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        out._metadata = OrderedDict(metadata)  # type: ignore[attr-defined]
    return out


__all__ = [
    "STATE_DICT_KEYS",
    "detached_state",
    "find_state_dict",
    "match_keys",
    "plain_message",
    "read_weights_file",
    "with_metadata",
]
