"""The search records configurations the chip's toolchain cannot deploy as infeasible, untrained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FAST = {"teacher_epochs": 3, "epochs": 1.0, "batch_size": 128}  # as tests/search/conftest.py


@pytest.mark.slow
def test_illegal_trials_are_infeasible_with_reasons_and_untrained(tmp_path):
    from autocompress.core.workspace import RunDirectory
    from autocompress.search.api import search

    # qcs6490's space proposes 16-bit weights with 8-bit activations on some layers;
    # QNN HTP has no such precision (plugins/autocompress_qualcomm/legality.py).
    # Anchors (uniform int8) and promotion off: the sampler's own proposals are what is tested.
    run = search(
        out=tmp_path / "qc",
        trials=6,
        chip=["qualcomm/qcs6490"],
        seed=0,
        model="small_cnn",
        anchors=False,
        rungs=[1],
        **FAST,
    )
    records = [json.loads(line) for line in (Path(run.run_dir) / "trials.jsonl").open()]
    illegal = [r for r in records if (r.get("error") or "").startswith("not deployable")]
    assert illegal, "expected at least one w16/a8 configuration in 6 trials"
    for record in illegal:
        assert record["state"] == "infeasible" and not record["feasible"]
        assert "QNN HTP" in record["error"] and record["violations"]["legality"] >= 1
        assert "finetune" not in record["timings_s"] and not record["metrics"]
        assert not RunDirectory(Path(run.run_dir)).student_pt(record["number"]).exists()
    for record in records:
        if record["state"] == "complete":
            assert "legality" not in record["violations"]
