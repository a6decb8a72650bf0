"""How much of a dataset's training images is held out for validation (torch-free).

:data:`DEFAULT_VAL_FRACTION` is the one default of ``autocompress train``,
``autocompress search`` and :func:`autocompress.core.data.load_dataset`. With the
same seed the three carve the same validation images, so a teacher from
``autocompress train`` never saw the search's validation images. That matters
because every student starts from the teacher's weights: a teacher that memorised
the validation images would make the students' validation accuracies optimistic
and bias which trials are promoted and picked (test accuracies are not affected).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_VAL_FRACTION = 0.2
#: Two recorded fractions closer than this are the same split (a limit rounds counts).
_SAME_FRACTION = 0.01


def held_out_fraction(train_images: int, val_images: int) -> float:
    """The validation share of a split, as recorded in a teacher checkpoint."""
    return round(val_images / max(train_images + val_images, 1), 4)


def teacher_split_mismatch(
    meta: Mapping[str, Any], *, dataset: str, seed: int, val_fraction: float
) -> str | None:
    """Why a given teacher's training split differs from the search's, or None.

    ``meta`` is the teacher checkpoint's metadata; checkpoints that do not record
    their split (older ones, or a user's plain state_dict) give None.
    """
    if meta.get("dataset") != dataset or "val_fraction" not in meta or "seed" not in meta:
        return None
    theirs = float(meta["val_fraction"]), int(meta["seed"])
    if abs(theirs[0] - val_fraction) < _SAME_FRACTION and theirs[1] == seed:
        return None
    return (
        f"the teacher was trained holding out {theirs[0]:.0%} of the training images for "
        f"validation with seed {theirs[1]}; this search holds out {val_fraction:.0%} with "
        f"seed {seed}, so some validation images were teacher training images and validation "
        f"accuracies are optimistic (test accuracies are not)"
    )
