"""Real run directories for the report / export tests (built once per test session).

- ``search_run``: a tiny real search (``autocompress.search.api.search``) on the
  digits default, main chip rockchip/rv1126 with a latency budget that binds (95 % of the
  teacher's int8 latency)
  (some trials over budget, never trained), also costed on nvidia/orin-nano.
- ``mixed_run``: the same teacher, with trials made by the real pieces
  (``build_student`` + ``finetune`` + ``evaluate`` + the cost model) on
  nvidia/orin-nano: a pruned student with mixed 4/8-bit weights, an
  over-budget trial and a failed one.
- ``progress_run``: a copy of ``search_run`` as a reader finds it mid-search:
  fewer trials than planned and a torn last line.

Loaded by the conftests of tests/report, tests/export and tests/cli through
:func:`load` so that the runs are built once even when several folders use them.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

MODULE_NAME = "autocompress_test_real_run"
MIXED_CONFIG = {
    "width_multiplier": 0.75,
    "prune_ratios": {"3": 0.25, "7": 0.5},
    "weight_bits": {"0": 8, "3": 4, "7": 4, "12": 8},
    "activation_bits": {"0": 8, "3": 8, "7": 8, "12": 8},
}
_CACHE: dict[str, Path] = {}


def load():
    """This module, imported once under a fixed name (shared cache)."""
    if MODULE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, Path(__file__))
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[MODULE_NAME]


def search_run(root: Path) -> Path:
    if "search" not in _CACHE:
        import torch

        from autocompress.search.api import search

        torch.set_num_threads(1)
        out = root / "search-run"
        search(
            trials=6,
            out=out,
            chip=["rockchip/rv1126", "nvidia/orin-nano"],
            model="small_cnn",
            latency_ms="95%",  # of the teacher's int8 latency: binds whatever the cost model
            teacher_epochs=4,
            epochs=0.5,
            seed=0,
            rungs=[1],  # no promotion: one trials.jsonl line per trial, as these tests read it
        )
        _CACHE["search"] = out
    return _CACHE["search"]


def progress_run(root: Path) -> Path:
    if "progress" not in _CACHE:
        source = search_run(root)
        out = root / "progress-run"
        shutil.copytree(source, out)
        lines = (source / "trials.jsonl").read_text().splitlines(keepends=True)
        (out / "trials.jsonl").write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
        (out / "pareto.json").unlink(missing_ok=True)
        _CACHE["progress"] = out
    return _CACHE["progress"]


def mixed_run(root: Path) -> Path:
    if "mixed" not in _CACHE:
        _CACHE["mixed"] = _build_mixed_run(search_run(root), root / "mixed-run")
    return _CACHE["mixed"]


def _build_mixed_run(source: Path, out: Path) -> Path:
    import torch
    import yaml

    from autocompress.compress.evaluate import evaluate
    from autocompress.compress.student import build_student, finetune, save_student
    from autocompress.core.budget import Budget
    from autocompress.core.data import load_dataset
    from autocompress.core.models import ModelSpec, load_checkpoint
    from autocompress.core.pareto import pareto_front
    from autocompress.core.run_config import RunConfig
    from autocompress.core.trial_config import TrialConfig
    from autocompress.core.workspace import RunDirectory, TrialRecord
    from autocompress.hardware.estimate import estimate_costs
    from autocompress.hardware.extract import extract_layers
    from autocompress.hardware.plugins import get_chip

    torch.set_num_threads(1)
    out.mkdir(parents=True)
    shutil.copy(source / "teacher.pt", out / "teacher.pt")
    config = yaml.safe_load((source / "run.yaml").read_text())
    chips = ["nvidia/orin-nano", "rockchip/rk3588"]
    budget = Budget(memory_kb=64)
    config.update(
        name="mixed-orin",
        chip=chips[0],
        chips=chips,
        budget={k: getattr(budget, k) for k in Budget.__dataclass_fields__},
        budget_sources={"memory_kb": "user"},
        trials=3,
    )
    run = RunDirectory(out)
    run.write_run_config(RunConfig.from_dict(config))

    teacher, _spec, _ = load_checkpoint(out / "teacher.pt")
    dataset = config["dataset"]
    data = load_dataset(dataset["name"], seed=dataset["seed"], val_fraction=dataset["val_fraction"])
    shape = tuple(config["input_shape"])
    protect = config["space"]["protect"]
    chip = get_chip(chips[0])

    trials = [
        ("complete", TrialConfig(**MIXED_CONFIG)),
        (
            "infeasible",
            TrialConfig(width_multiplier=1.0, weight_bits={"0": 8, "3": 8, "7": 8, "12": 8}),
        ),
    ]
    records = []
    for number, (state, trial_config) in enumerate(trials):
        student = build_student(teacher, trial_config, chip, shape, protect=protect)
        costs = {
            k: c.metrics() for k, c in estimate_costs(extract_layers(student, shape), chips).items()
        }
        metrics: dict[str, float] = {}
        if state == "complete":
            finetune(student, teacher, data, trial_config, epochs=3, lr=0.01, seed=0)
            metrics["accuracy"] = evaluate(student, data.val)["accuracy"]
            metrics["test_accuracy"] = evaluate(student, data.test)["accuracy"]
            save_student(
                run.student_pt(number),
                student,
                teacher_spec=ModelSpec.from_dict(config["model"]),
                config=trial_config,
                chip_id=chip.chip_id,
                input_shape=shape,
                protect=protect,
            )
        violations = budget.violations({**costs[chip.chip_id], **metrics})
        feasible = state == "complete" and all(v <= 0 for v in violations.values())
        assert (state == "complete") == feasible, (state, violations)
        records.append(
            TrialRecord(
                number=number,
                state=state,
                config=trial_config.to_dict(),
                metrics=metrics,
                costs=costs,
                violations=violations,
                feasible=feasible,
            )
        )
    records.append(
        TrialRecord(
            number=2,
            state="failed",
            config=TrialConfig().to_dict(),
            error="RuntimeError: out of memory",
        )
    )
    for record in records:
        run.append_trial(record)
    points = [
        {"accuracy": r.metrics.get("accuracy"), **r.costs.get(chip.chip_id, {})}
        for r in records
        if r.feasible
    ]
    feasible_numbers = [r.number for r in records if r.feasible]
    run.write_pareto(
        {
            "objectives": config["objectives"],
            "fronts": {
                chip.chip_id: [
                    feasible_numbers[i] for i in pareto_front(points, config["objectives"])
                ]
            },
            "updated_utc": "2026-11-21T00:00:00Z",
        }
    )
    return out


def read_records(run: Path) -> list[dict]:
    """trials.jsonl as dicts (complete lines only)."""
    out = []
    for line in (run / "trials.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
