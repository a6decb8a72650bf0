"""Cost recorded trials on a chip the search did not cost them on — no retraining.

A trial's architecture is rebuilt from the teacher and its ``TrialConfig`` with
``build_student`` using the run's MAIN chip (its channel alignment decided the
architecture that was trained), then extracted and costed on the other chip.
The teacher itself is costed the same way (float32) as the report's
reference point.
"""

from __future__ import annotations

from functools import cached_property

from torch import nn

from autocompress.compress.student import build_student
from autocompress.core.errors import RunDirectoryError
from autocompress.core.model_code import model_code_policy
from autocompress.core.models import load_checkpoint
from autocompress.core.workspace import TrialRecord
from autocompress.hardware.cost import Cost
from autocompress.hardware.estimate import estimate_cost
from autocompress.hardware.plugins import get_chip
from autocompress.report.run_data import RunData


class Rescorer:
    """Rebuilds students of one run and costs them on any installed chip (teacher loaded once)."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self._costs: dict[tuple[int, str], Cost] = {}

    @cached_property
    def teacher(self) -> nn.Module:
        path = self.run.directory.teacher_pt
        if not path.is_file():
            raise RunDirectoryError(
                f"{path} is missing: the teacher is needed to rebuild trial architectures",
                hint="Wait until the search has trained its teacher, or use a chip the run costed.",
            )

        with model_code_policy(
            command="report",
            refuse_hint="report never runs model code from a run directory (it reads the "
            "records only); re-scoring on another chip needs the model: use a chip the run "
            "costed, or export the trial (autocompress export … --trust-model-code).",
        ):
            model, _spec, _extra = load_checkpoint(path)
        return model.eval()

    def student(self, record: TrialRecord) -> nn.Module:
        """The trial's architecture as trained (main chip's alignment), weights from the teacher."""
        return build_student(
            self.teacher,
            RunData.trial_config(record),
            get_chip(self.run.main_chip),
            self.run.input_shape,
            protect=self.run.protect,
        ).eval()

    def trial_cost(self, record: TrialRecord, chip_id: str) -> Cost:
        """Full cost (with per-layer breakdown) of a trial's architecture on ``chip_id``."""
        key = (record.number, chip_id)
        if key not in self._costs:
            self._costs[key] = estimate_cost(self.student(record), self.run.input_shape, chip_id)
        return self._costs[key]

    def teacher_cost(self, chip_id: str) -> Cost:
        """Cost of the float32 teacher on ``chip_id``."""
        key = (-1, chip_id)
        if key not in self._costs:
            self._costs[key] = estimate_cost(self.teacher, self.run.input_shape, chip_id)
        return self._costs[key]
