"""A given teacher that held out other validation images than the search is named, with the fix."""

from __future__ import annotations

import torch

from autocompress.core.validation_split import (
    DEFAULT_VAL_FRACTION,
    held_out_fraction,
    teacher_split_mismatch,
)


def test_the_same_split_is_quiet_and_another_seed_or_fraction_is_named():
    meta = {"dataset": "cifar10", "seed": 0, "val_fraction": held_out_fraction(36000, 9000)}
    assert meta["val_fraction"] == DEFAULT_VAL_FRACTION
    same = dict(dataset="cifar10", seed=0, val_fraction=DEFAULT_VAL_FRACTION)
    assert teacher_split_mismatch(meta, **same) is None
    other_seed = teacher_split_mismatch(meta, **same | {"seed": 3})
    assert other_seed is not None and "seed 0" in other_seed and "seed 3" in other_seed
    older = {**meta, "val_fraction": 0.1}  # what `autocompress train` held out before
    assert "10%" in teacher_split_mismatch(older, **same)
    # another dataset, or a checkpoint that does not say: nothing to compare
    assert teacher_split_mismatch(meta, **same | {"dataset": "digits"}) is None
    assert teacher_split_mismatch({"dataset": "cifar10"}, **same) is None


def test_a_search_with_another_seed_than_its_teacher_warns(tmp_path, teacher_checkpoint):
    from autocompress.search.api import search

    extra = torch.load(teacher_checkpoint, weights_only=True)["extra"]
    assert extra["seed"] == 0 and abs(extra["val_fraction"] - DEFAULT_VAL_FRACTION) < 0.01

    class Collect:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def notice(self, text: str) -> None:
            self.lines.append(text)

    def warnings_of(seed: int) -> list[str]:
        seen = Collect()
        search(
            out=tmp_path / f"seed{seed}",
            model="small_cnn",
            teacher=teacher_checkpoint,
            seed=seed,
            trials=1,
            epochs=0.5,
            rungs=[1],
            anchors=False,
            notices=seen,
        )
        return [line for line in seen.lines if "warning" in line]

    assert warnings_of(0) == []
    # run.yaml records the given teacher's own epochs (its checkpoint's), not a default
    from autocompress.core.workspace import RunDirectory

    recorded = RunDirectory(tmp_path / "seed0").read_run_config().teacher
    assert recorded.source == "given" and recorded.epochs == int(extra["epochs"])
    (warning,) = warnings_of(1)
    assert "validation accuracies are optimistic" in warning
    assert "--seed 0" in warning and "autocompress train --seed 1" in warning
