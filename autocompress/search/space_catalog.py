"""Where search spaces come from: the built-in ones, or a user's YAML file.

The built-in spaces live in the repository's ``search_spaces/`` folder, which
the package reaches as ``autocompress.builtin_spaces`` (a link inside the
package, so editable installs and wheels both carry it). When that package is
missing (an unusual install), the folder next to the package is used.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING

from autocompress.core.errors import UnknownNameError
from autocompress.search.space import SearchSpace, load_space_file

if TYPE_CHECKING:
    from autocompress.search.resolve import ResolvedSpace

DEFAULT_SPACE = "default"


def builtin_space_dir() -> Path:
    """The folder holding the built-in ``*.yaml`` spaces."""
    try:
        folder = Path(str(importlib.resources.files("autocompress.builtin_spaces")))
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    except ModuleNotFoundError:
        pass
    # a source tree without the builtin_spaces link: the repository's search_spaces/
    return Path(__file__).resolve().parents[2] / "search_spaces"


def builtin_space_names() -> list[str]:
    """Names of the built-in spaces (file stems)."""
    return sorted(p.stem for p in builtin_space_dir().glob("*.yaml"))


def space_path(name_or_path: str | Path) -> Path:
    """The file a space name or path refers to; an unknown name lists the known ones."""
    text = str(name_or_path)
    candidate = Path(text)
    if text.endswith((".yaml", ".yml")) or candidate.is_file() or "/" in text:
        return candidate
    path = builtin_space_dir() / f"{text}.yaml"
    if not path.is_file():
        raise UnknownNameError(
            "search space",
            text,
            builtin_space_names(),
            list_hint="See `autocompress spaces`, or pass the path of a space file (mine.yaml).",
        )
    return path


def load_space(name_or_path: str | Path = DEFAULT_SPACE) -> SearchSpace:
    """A built-in space by name, or a space file by path, validated."""
    return load_space_file(space_path(name_or_path))


def list_spaces() -> list[SearchSpace]:
    """Every built-in space, validated."""
    return [load_space_file(builtin_space_dir() / f"{name}.yaml") for name in builtin_space_names()]


def resolve_for_chip(
    space: SearchSpace,
    chip_id: str,
    model: str,
    input_shape: tuple[int, ...],
    *,
    num_classes: int = 10,
) -> ResolvedSpace:
    """What chip ``chip_id`` leaves of ``space`` for ``model`` on ``input_shape`` (C, H, W) images.

    The model is built as a search would build it (small-input stem by
    :func:`autocompress.core.models.auto_small_input`), its layers are read, and the
    space is resolved against the chip (``autocompress spaces show --chip``).

    Raises:
        UnknownNameError: unknown chip or model.
    """
    # torch, the model zoo and the plugins load only here: listing spaces stays cheap.
    from autocompress.core.models import auto_small_input, build_model
    from autocompress.hardware.plugins import get_chip
    from autocompress.search.context import model_layers
    from autocompress.search.resolve import resolve_space

    chip = get_chip(chip_id)
    net = build_model(
        model,
        num_classes=num_classes,
        in_channels=input_shape[0],
        small_input=auto_small_input(model, input_shape[1:]),
    )
    quantizable, prunable, out_channels = model_layers(net, input_shape)
    return resolve_space(
        space, chip, quantizable=quantizable, prunable=prunable, out_channels=out_channels
    )
