"""``export``: write a chosen trial as a deployable model, checked before it is declared done.

``models/trial-NNNN/`` receives ``model.onnx`` (pruned, Q/DQ per layer, opset
21), ``model.pt`` (weights_only-loadable student + what rebuilds it),
``card.json`` / ``card.md`` and whatever files the chip's plugin adds.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.compress.student import load_student, save_student
from autocompress.core.data import stratified_sample
from autocompress.core.errors import ConfigError, RunDirectoryError
from autocompress.core.file_hash import file_sha256
from autocompress.core.file_writes import writing
from autocompress.core.model_code import model_code_policy
from autocompress.core.model_files import MODEL_SOURCE_DIR
from autocompress.core.models import load_checkpoint
from autocompress.core.owned_dir import OwnedDirectory
from autocompress.core.run_data import RunData, load_run
from autocompress.core.trial_rows import TrialRow, make_row
from autocompress.core.version import __version__
from autocompress.core.workspace import TrialRecord
from autocompress.export.card import layer_entries, write_card
from autocompress.export.onnx_files import data_file
from autocompress.export.onnx_model import write_onnx
from autocompress.export.rule import PickRule, parse_rule
from autocompress.export.verify import ExportCheck, check_onnx_file, compare_with_torch
from autocompress.hardware.calibration_store import calibration_record
from autocompress.hardware.estimate import estimate_cost
from autocompress.hardware.extract import extract_layers
from autocompress.hardware.plugins import get_chip, plugin_versions, run_export_steps

DEFAULT_CHECK_IMAGES = 2000


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        trial: the exported trial number.
        directory: ``models/trial-NNNN`` (or ``out``).
        onnx_path / pt_path / card_json / card_md: the files.
        chip_files: files the chip plugin's export step wrote.
        check: ONNX vs PyTorch comparison on held-out images.
        card: the card as written.
    """

    trial: int
    directory: Path
    onnx_path: Path
    pt_path: Path
    card_json: Path
    card_md: Path
    check: ExportCheck
    chip_files: tuple[Path, ...] = ()
    card: dict[str, Any] = field(default_factory=dict, repr=False)


def candidate_rows(run: RunData) -> list[TrialRow]:
    """Report rows an export may take: trained, within the run's budget, on the main chip."""
    budget = run.budget()
    rows = (
        make_row(
            record,
            record.costs.get(run.main_chip),
            budget,
            run.directory.read_recovered(record.number),
        )
        for record in run.records
    )
    return [r for r in rows if r.trained and r.feasible]


def pick_trial(run: RunData, rule: str | PickRule) -> int:
    """The trial number ``rule`` chooses among trained feasible trials (ConfigError if none)."""
    parsed = parse_rule(rule) if isinstance(rule, str) else rule
    rows = candidate_rows(run)
    index = parsed.choose([{m: r.value(m) for m in _rule_metrics(parsed)} for r in rows])
    if index is None:
        raise ConfigError(
            f"no trial of {run.path} satisfies --pick {str(parsed)!r} "
            f"({len(rows)} trained trials meet the run's budget)",
            hint=f"Loosen the rule; `autocompress report {run.path}` shows the candidates.",
        )
    return rows[index].number


def _rule_metrics(rule: PickRule) -> set[str]:
    return {rule.metric, *(c.metric for c in rule.conditions)}


def check_exportable(run: RunData, number: int) -> TrialRecord:
    """The trial's record if it was trained and its student saved; a clear error otherwise."""
    record = run.record(number)
    if record.state == "infeasible":
        over = ", ".join(f"{k} {v:+.0%}" for k, v in record.violations.items() if v > 0)
        raise ConfigError(
            f"trial {number} broke a cost budget on {run.main_chip} ({over or 'see report'}) and "
            "was "
            "never trained; there is no model to export",
            hint=f"Export a trial of the front: `autocompress report {run.path}`.",
        )
    if record.state != "complete":
        raise ConfigError(
            f"trial {number} {record.state}: {record.error or 'no model'}; there is no model to "
            "export",
            hint=f"Export a trial of the front: `autocompress report {run.path}`.",
        )
    if not record.feasible:
        over = ", ".join(f"{k} {v:+.0%}" for k, v in record.violations.items() if v > 0)
        raise ConfigError(
            f"trial {number} does not meet the run's budget on {run.main_chip} ({over})",
            hint=f"Export a feasible trial: `autocompress report {run.path}`.",
        )
    if not run.directory.student_pt(number).is_file():
        raise RunDirectoryError(
            f"{run.directory.student_pt(number)} is missing: the trained student of trial {number}"
        )
    return record


def export(
    run_dir: str | Path,
    *,
    trial: int | None = None,
    pick: str | None = None,
    out: str | Path | None = None,
    min_agreement: float | None = None,
    check_images: int = DEFAULT_CHECK_IMAGES,
    recover_epochs: float | None = None,
    device: str = "auto",
    recover_progress: Any = None,
    trust_model_code: bool = False,
) -> ExportResult:
    """Export one trial of ``run_dir`` (by number or by a ``--pick`` rule).

    The weights exported are the recovery-trained ones
    (``models/trial-NNNN/recovered.pt``, written by ``autocompress finetune``)
    when they exist, else the search's proxy fine-tune; the card says which and
    shows both accuracies. ``recover_epochs`` runs that recovery training first
    (on ``device``; ``recover_progress(stage, fraction)`` follows it).

    Args:
        run_dir: a run directory (finished or still running).
        trial: trial number; exactly one of ``trial`` / ``pick``.
        pick: a rule such as ``"max accuracy where latency_ms <= 3"`` (docs/report-and-export.md).
        out: directory to write (default ``RUN/models/trial-NNNN``).
        min_agreement: top-1 agreement ONNX vs PyTorch required on held-out images; None
            (default) derives it from the student's own float noise
            (:func:`autocompress.export.verify.compare_with_torch`).
        check_images: at most this many test-split images are compared.
        trust_model_code: import the run's ``file.py:function`` model even when it is
            not the file the run recorded at creation (resolved path + sha256).

    The export writes only its own files: into a new or empty folder, or over a
    previous export in that folder (file by file); any other folder is refused
    before anything is written (:class:`~autocompress.core.errors.OutputDirError`).

    Raises:
        ConfigError: bad rule, both/neither of trial and pick, a trial with no model.
        RunDirectoryError: not a run directory, unknown trial, missing student.
        ExportError: the ONNX checker, onnxruntime or the agreement check failed.
        OutputDirError: ``out`` holds files that are not a previous export.
        UntrustedModelCodeError: the run's model is a Python file that is not trusted.
        WriteError: a file could not be written (full disk, no permission).
    """
    if (trial is None) == (pick is None):
        raise ConfigError("give exactly one of trial (--trial N) or pick (--pick RULE)")
    run = load_run(run_dir)
    rule = parse_rule(pick) if pick is not None else None
    number = trial if trial is not None else pick_trial(run, rule)  # type: ignore[arg-type]
    record = check_exportable(run, number)
    directory = Path(out) if out is not None else run.directory.model_dir(number)
    owned = OwnedDirectory(
        directory,
        kind="export",
        protected=[run.path],
        legacy_files=_previous_export_files,
        how_to_choose=f"Pass --out a new or empty folder, e.g. --out exports/trial-{number:04d} "
        f"(the default is {run.directory.model_dir(number)}).",
        alongside=_recovery_files(run, number, directory),
    )
    owned.check()  # before any work: a wrong --out costs nothing
    with model_code_policy(
        trusted=trust_model_code,
        allowed=run.config.model_identities(),
        command="export",
    ):
        if recover_epochs is not None:
            # Lazy: recover.api imports this module (pick_trial, check_exportable).
            from autocompress.recover.api import recover

            recover(
                run.path,
                trial=number,
                epochs=recover_epochs,
                device=device,
                progress=recover_progress,
                trust_model_code=trust_model_code,
            )
        staging = owned.stage()
        try:
            with writing(f"the export of trial {number}", directory):
                result = _export_into(
                    run,
                    record,
                    staging,
                    picked_by=str(rule) if rule else f"--trial {number}",
                    min_agreement=min_agreement,
                    check_images=check_images,
                )
            owned.commit()
        except BaseException:
            owned.abort()
            raise
    return _relocate(result, staging, directory)


def _previous_export_files(directory: Path) -> set[str] | None:
    """Files of an export written before manifests (its card.json lists them), else None."""
    import json

    try:
        card = json.loads((directory / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(card, dict) or "trial" not in card or not isinstance(card.get("files"), dict):
        return None
    chip_files = card.get("chip_files") or []
    return {"card.json", "card.md", *map(str, card["files"]), *map(str, chip_files)}


def _recovery_files(run: RunData, number: int, directory: Path) -> set[str]:
    """``finetune``'s files, which live in the trial's default export folder and are kept."""
    if directory.resolve() != run.directory.model_dir(number).resolve():
        return set()
    return {
        path.name
        for path in (
            run.directory.recovered_pt(number),
            run.directory.recovered_json(number),
            run.directory.recovery_state_pt(number),
        )
    }


def _relocate(result: ExportResult, old: Path, new: Path) -> ExportResult:
    def move(path: Path) -> Path:
        return new / path.relative_to(old)

    return ExportResult(
        trial=result.trial,
        directory=new,
        onnx_path=move(result.onnx_path),
        pt_path=move(result.pt_path),
        card_json=move(result.card_json),
        card_md=move(result.card_md),
        check=result.check,
        chip_files=tuple(move(p) for p in result.chip_files),
        card=result.card,
    )


def _export_into(
    run: RunData,
    record: TrialRecord,
    directory: Path,
    *,
    picked_by: str,
    min_agreement: float | None,
    check_images: int,
) -> ExportResult:
    import torch

    number = record.number
    chip = get_chip(run.main_chip)
    input_shape = run.input_shape
    recovered = run.directory.read_recovered(number)
    recovered_pt = run.directory.recovered_pt(number)
    if recovered is not None and recovered_pt.is_file():
        student = load_student(recovered_pt).eval().cpu()
        weights = {
            "source": "recovered",
            "file": str(recovered_pt.relative_to(run.path)),
            "epochs": recovered.get("epochs"),
            "seconds": recovered.get("seconds"),
            "recipe": recovered.get("recipe"),
            "sha256": file_sha256(recovered_pt),
        }
    else:
        recovered = None
        student = load_student(run.directory.student_pt(number)).eval().cpu()
        weights = {
            "source": "proxy",
            "file": str(run.directory.student_pt(number).relative_to(run.path)),
            "epochs": run.config.finetune.epochs,
        }

    onnx_path, pt_path = directory / "model.onnx", directory / "model.pt"
    notes, raw = write_onnx(
        student,
        input_shape,
        onnx_path,
        doc=f"autocompress {run.name} trial {number} for {chip.chip_id}",
    )
    check_onnx_file(onnx_path)

    data = run.config.dataset.load()  # the very splits and statistics the search used
    # a stratified sample: an image folder's test split is sorted by class
    picked = stratified_sample(data.test.labels, check_images, seed=0)
    images, labels = data.test.images[picked], data.test.labels[picked]
    check = compare_with_torch(onnx_path, student, images, labels, min_agreement=min_agreement)

    spec = run.config.model
    config = RunData.trial_config(record)
    save_student(
        pt_path,
        student,
        teacher_spec=spec,
        config=config,
        chip_id=chip.chip_id,
        input_shape=input_shape,
        protect=run.protect,
    )
    torch.load(pt_path, weights_only=True)  # the promise: loadable without unpickling code
    _keep_model_source(run.directory.path, directory)

    descriptors = extract_layers(student, input_shape)
    cost = estimate_cost(student, input_shape, chip)
    teacher_channels: dict[str, int] = {}
    if run.directory.teacher_pt.is_file():
        teacher, _, _ = load_checkpoint(run.directory.teacher_pt)
        teacher_channels = {d.name: d.out_channels for d in extract_layers(teacher, input_shape)}
    layers = layer_entries(descriptors, cost.layers, notes, raw, teacher_channels)
    representation = sorted(
        {n[k] for n in notes for k in ("weight_note", "activation_note") if k in n}
    )

    applied = {"mean": [float(v) for v in data.mean], "std": [float(v) for v in data.std]}
    recorded = run.config.normalization
    normalization = recorded.to_dict() if recorded is not None else applied
    card: dict[str, Any] = {
        "format_version": 1,
        "run": {"name": run.name, "path": str(run.path)},
        "trial": number,
        "picked_by": picked_by,
        "chip_id": chip.chip_id,
        "chip": {"vendor": chip.vendor, "display_name": chip.display_name},
        "input_shape": list(input_shape),
        "normalization": normalization,
        "class_names": list(getattr(data, "class_names", []) or []),
        "weights": weights,
        "accuracy": {
            "validation": (recovered or record.metrics).get("accuracy"),
            "test": (recovered or record.metrics).get("test_accuracy"),
            "proxy_validation": record.metrics.get("accuracy"),
            "proxy_test": record.metrics.get("test_accuracy"),
            "recovered_validation": recovered.get("accuracy") if recovered else None,
            "recovered_test": recovered.get("test_accuracy") if recovered else None,
            "teacher_test": run.teacher.get("test_accuracy"),
            "teacher_agreement": record.metrics.get("teacher_agreement"),
            "onnx_on_check_images": check.onnx_accuracy,
        },
        "onnx_check": check.to_dict() | {"opset": 21},
        # what the check read: the run's own test split, normalised as the search did
        "check_data": {
            "dataset": run.config.dataset.name,
            "split": "test",
            "split_images": len(data.test),
            "checked_images": len(picked),
            "normalization": applied,
        },
        "predicted_cost": dict(record.costs.get(chip.chip_id, {})),
        "predicted_cost_recomputed": cost.metrics() | {"macs": cost.macs},
        "costs_all_chips": {k: dict(v) for k, v in record.costs.items()},
        "feasible": record.feasible,
        "violations": dict(record.violations),
        "budget": run.budget().active(),
        "layers": layers,
        "representation_notes": representation,
        "config": record.config.to_dict(),
        "width_multiplier": config.width_multiplier,
        "seeds": {
            "run": run.config.seed,
            "dataset": run.config.dataset.seed,
            "sampler": run.config.sampler.seed,
        },
        "teacher": dict(run.teacher),
        "versions": {
            "autocompress": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onnx": _version("onnx"),
            "onnxruntime": check.onnxruntime_version,
            "plugins": plugin_versions(),
            "run": dict(run.config.versions),
        },
        "calibration": _calibration_record(run.config.calibration),
    }
    chip_files = tuple(run_export_steps(chip, directory, onnx_path, card))
    card["chip_files"] = [
        str(p.relative_to(directory)) if p.is_relative_to(directory) else str(p) for p in chip_files
    ]
    card["files"] = {
        p.name: file_sha256(p)
        for p in (onnx_path, data_file(onnx_path), pt_path, *chip_files)  # data: over 2 GiB
        if p.is_file()
    }
    card_json, card_md = write_card(directory, card)
    return ExportResult(
        trial=number,
        directory=directory,
        onnx_path=onnx_path,
        pt_path=pt_path,
        card_json=card_json,
        card_md=card_md,
        check=check,
        chip_files=chip_files,
        card=card,
    )


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except (ImportError, AttributeError):
        return None


__all__ = ["ExportResult", "check_exportable", "export", "pick_trial"]


def _calibration_record(at_search: Any) -> dict[str, Any]:
    """The calibration the search costed with (run.yaml) and the one this export applies."""
    return {"search": at_search, "export": calibration_record()}


def _keep_model_source(run_path: Path, directory: Path) -> None:
    """Copy the run's ``model_source/`` beside model.pt, so the export loads on its own."""
    import shutil

    source = run_path / MODEL_SOURCE_DIR
    if source.is_dir():
        for file in sorted(source.glob("*.py")):
            (directory / MODEL_SOURCE_DIR).mkdir(exist_ok=True)
            shutil.copyfile(file, directory / MODEL_SOURCE_DIR / file.name)
