"""``autocompress.search(...)``: the budget-constrained multi-objective search, from Python.

Same reach as ``autocompress search``: every CLI flag is a keyword argument
(``chip`` may be a list; budgets are ``latency_ms=``, ``memory_kb=`` …, numbers
or ``"60%"`` of the teacher's int8 cost). Returns a :class:`SearchResult`.

Example::

    import autocompress
    result = autocompress.search(trials=20, latency_ms=0.05, out="runs/demo")
    for record in result.front():
        print(record.number, record.metrics["accuracy"], record.costs[result.chip]["latency_ms"])
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autocompress.compress.student import quantizable_layers
from autocompress.core.data import describe_dataset
from autocompress.core.errors import CheckpointError, ConfigError, OutputDirError, RunDirectoryError
from autocompress.core.file_writes import CreatedPaths
from autocompress.core.model_files import is_file_model, keep_model_source
from autocompress.core.models import peek_checkpoint
from autocompress.core.run_config import RunConfig, TeacherEntry
from autocompress.core.run_lock import LOCK_NAME, RunLock
from autocompress.core.trial_config import TrialConfig
from autocompress.core.workspace import RunDirectory, TrialRecord
from autocompress.hardware.cost import Cost
from autocompress.hardware.plugins import get_chip
from autocompress.search import prepare
from autocompress.search.anchors import enqueue_anchors, enqueue_cheapest
from autocompress.search.budget_fill import budget_fill_params, enqueue_budget_fill
from autocompress.search.context import model_layers, pick_device
from autocompress.search.front import compute_fronts, update_pareto
from autocompress.search.notices import SearchNotices, notices_for
from autocompress.search.optuna_backend import run_optuna_search
from autocompress.search.promotion import promote, rung_epochs
from autocompress.search.ray_backend import run_ray_search
from autocompress.search.resolve import resolve_space
from autocompress.search.resume_check import (
    check_model_files,
    check_study,
    check_unchanged,
)
from autocompress.search.samplers import make_sampler, uses_numeric_encoding
from autocompress.search.settings import (
    BUDGET_FIELDS,
    DEFAULT_MODEL_ARGS,
    SearchSettings,
    parse_input_size,
    settings_from_file,
)
from autocompress.search.space_catalog import load_space
from autocompress.search.study import open_study, proposal_cap
from autocompress.search.teacher_source import obtain_teacher


@dataclass
class SearchResult:
    """What a search produced (everything is also on disk in ``run_dir``).

    Attributes:
        run_dir: the run directory.
        chip: the main chip; ``chips`` every chip costed.
        objectives: the objective metric names.
        trials: one record per finished trial (latest per number).
        fronts: chip id -> trial numbers on its feasible Pareto front.
        interrupted: stopped by Ctrl-C (or a timeout) before the plan was done.
        cancelled: stopped by Ctrl-C (SIGINT); the CLI exits with code 130.
        planned: trained trials asked for (``--trials``; infeasible and duplicate
            proposals do not count).
        stop_reason: why the run ended before ``planned`` trained trials, if it did.
        promotion: rung epochs and the promotions this call made.
        elapsed_s: wall-clock seconds of this call.
        teacher: run.yaml's teacher entry (accuracy, source).
        budget: the resolved budget.
    """

    run_dir: Path
    chip: str
    chips: list[str]
    objectives: list[str]
    trials: list[TrialRecord]
    fronts: dict[str, list[int]]
    interrupted: bool = False
    cancelled: bool = False
    elapsed_s: float = 0.0
    teacher: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    budget_sources: dict[str, str] = field(default_factory=dict)
    planned: int = 0
    stop_reason: str | None = None
    promotion: dict[str, Any] = field(default_factory=dict)

    def front(self, chip: str | None = None) -> list[TrialRecord]:
        """Records on the feasible front of ``chip`` (default: the main chip), by accuracy."""
        numbers = set(self.fronts.get(chip or self.chip, []))
        records = [r for r in self.trials if r.number in numbers]
        return sorted(records, key=lambda r: -r.metrics.get("accuracy", 0.0))

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.trials:
            out[record.state] = out.get(record.state, 0) + 1
        return out


def _settings_from_arguments(
    config: str | Path | None,
    arguments: dict[str, Any],
    base: SearchSettings | None = None,
) -> SearchSettings:
    """``base`` (default: the defaults), then the ``config`` file, then the keyword arguments."""
    chip = arguments.pop("chip", None)
    if chip is not None:
        arguments["chips"] = (chip,) if isinstance(chip, str) else tuple(chip)
    budget = {k: arguments.pop(k) for k in BUDGET_FIELDS if k in arguments}
    budget = {k: v for k, v in budget.items() if v is not None}
    objectives = arguments.pop("objectives", None)
    if objectives is not None:
        arguments["objectives"] = tuple(objectives)
    settings = base if base is not None else SearchSettings()
    file_values: dict[str, Any] = {}
    if config is not None:
        file_values = settings_from_file(config)
        file_budget = dict(file_values.pop("budget", {}) or {})
        settings = settings.with_overrides(**file_values, budget=file_budget)
    if budget:
        settings = settings.with_overrides(budget={**dict(settings.budget), **budget})
    model_given = (
        arguments.get("model") is not None
        or "model" in file_values
        or (base is not None and base.model != SearchSettings.model)
    )
    settings = settings.with_overrides(**arguments)
    if not model_given and settings.teacher is not None and Path(settings.teacher).is_file():
        settings = _model_of_teacher(settings)
    elif not model_given and settings.teacher is None:  # the default model at its default size
        args = {**DEFAULT_MODEL_ARGS, **dict(settings.model_args)}
        settings = dataclasses.replace(settings, model_args=args)
    return settings.validate()


def _model_of_teacher(settings: SearchSettings) -> SearchSettings:
    """The architecture an autocompress teacher checkpoint names (no --model given)."""
    assert settings.teacher is not None
    given = peek_checkpoint(settings.teacher)
    if given is None:
        raise ConfigError(
            f"--teacher {settings.teacher!r} holds weights only (a state dict), "
            "not the architecture they belong to",
            hint="Pass --model too: a torchvision name (resnet18, mobilenet_v2 …) or "
            "path/to/file.py:function that builds the network, plus --model-arg key=value "
            "for the arguments it was built with.",
        )
    return dataclasses.replace(
        settings,
        model=given.name,
        model_args=dict(given.model_args),
        small_input=given.small_input if settings.small_input is None else settings.small_input,
    )


def search(
    config: str | Path | None = None,
    *,
    settings: SearchSettings | None = None,
    notices: SearchNotices | None = None,
    model: str | None = None,
    dataset: str | None = None,
    chip: str | Sequence[str] | None = None,
    latency_ms: float | str | None = None,
    memory_kb: float | str | None = None,
    power_mw: float | str | None = None,
    energy_mj: float | str | None = None,
    model_size_kb: float | str | None = None,
    min_accuracy: float | None = None,
    objectives: Sequence[str] | None = None,
    space: str | None = None,
    trials: int | None = None,
    timeout_s: float | None = None,
    sampler: str | None = None,
    backend: str | None = None,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    out: str | Path | None = None,
    name: str | None = None,
    resume: bool = False,
    seed: int | None = None,
    teacher: str | Path | None = None,
    teacher_epochs: int | None = None,
    epochs: float | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    feature_weight: float | None = None,
    device: str | None = None,
    small_input: bool | None = None,
    model_args: dict[str, Any] | None = None,
    input_size: int | tuple[int, int] | str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    data_root: str | None = None,
    data_limit: int | None = None,
    rungs: Sequence[float] | None = None,
    anchors: bool | None = None,
    show_progress: bool = False,
    embedded_default: bool = False,
    trust_model_code: bool = False,
    **budgets: float | str | None,
) -> SearchResult:
    """Run (or resume) a search and return its result.

    Args:
        config: a YAML config (or a previous run.yaml); keyword arguments override it.
        settings: a :class:`SearchSettings` to start from (the config file and the keyword
            arguments given override it); the keyword arguments alone build one.
        notices: receives the one-line notices (run created, teacher baseline, layers kept
            at full width); default: rich on stderr with ``show_progress``, else none.
        model / dataset: what to compress and on which data (default fc_cnn on digits).
        model_args: keyword arguments of the model function (``{"width": 32}``).
        input_size: image size of an ``imagefolder:`` dataset, ``32`` or ``(H, W)`` / "HxW".
        mean / std: per-channel normalisation (default: the training split's statistics).
        chip: main chip id, or a list (main first); every trial is costed on all of them.
        latency_ms, memory_kb, power_mw, energy_mj, model_size_kb: upper budgets on the
            main chip, numbers or "NN%" of the teacher's int8 cost; unset ones default to
            the chip's declared budgets (latency, memory, power).
        min_accuracy: lower bound on validation accuracy (fraction).
        budgets: any other budget of the metric table (``autocompress.core.metrics``) by
            its Budget field name.
        objectives: metric names, accuracy first by convention (default accuracy, latency_ms).
        space: built-in space name or path of a space file.
        trials: trained trials for the whole run (resumes count earlier ones); infeasible
            and duplicate proposals are recorded but not counted (at most
            10 × trials proposals in all).
        timeout_s: stop starting new trials after this many seconds.
        sampler: tpe (default), nsga2, random, qmc, gp, nsga3.
        backend: ``optuna`` (processes on this machine) or ``ray`` (Ray Tune).
        workers: parallel trials (processes, or Ray concurrent trials).
        address: Ray cluster address (default: a local Ray runtime).
        cpus_per_trial / gpus_per_trial: Ray resources per trial.
        out: run directory (default runs/<name>); resume=True continues it.
        seed: seeds data split, teacher and sampler.
        teacher: a checkpoint from ``autocompress train``, or a state dict of ``model``
            (plain, or under state_dict / model / model_state_dict); else trained once.
        epochs: fine-tune epochs per trial; teacher_epochs: teacher training epochs.
        feature_weight: feature distillation in every trial (each kept convolution learns
            the teacher's output at its channels); 0 (default): the logits only. The
            teacher then runs on every batch instead of its cached logits (slower; not
            measured inside trials).
        rungs: promotion rungs as factors of ``epochs`` (default 1, 3, 9; 1, 3 on the
            digits): the best third of each rung is fine-tuned again for the next rung's
            epochs, then the front; ``[1]`` switches promotion off.
        anchors: enqueue the uniform-scaling configurations first (default True).
        show_progress: draw a rich progress line on stderr.
        trust_model_code: on resume, import the run's ``file.py:function`` model even
            when it is not the file the run recorded at creation (path + sha256).

    Raises:
        RunInUseError: another live search holds the run (``RUN/.lock``).
        OutputDirError: ``out`` is a folder with other files that is not a run.
        ConfigError: on resume, a setting differs from the one the run recorded.
    """
    started = time.perf_counter()
    unknown = sorted(set(budgets) - set(BUDGET_FIELDS))
    if unknown:
        raise TypeError(f"search() got unexpected keyword arguments {unknown}")
    arguments = {
        "model": model,
        "dataset": dataset,
        "chip": chip,
        "latency_ms": latency_ms,
        "memory_kb": memory_kb,
        "power_mw": power_mw,
        "energy_mj": energy_mj,
        "model_size_kb": model_size_kb,
        "min_accuracy": min_accuracy,
        "objectives": objectives,
        "space": space,
        "trials": trials,
        "timeout_s": timeout_s,
        "sampler": sampler,
        "backend": backend,
        "workers": workers,
        "address": address,
        "cpus_per_trial": cpus_per_trial,
        "gpus_per_trial": gpus_per_trial,
        "out": str(out) if out is not None else None,
        "name": name,
        "seed": seed,
        "teacher": str(teacher) if teacher is not None else None,
        "teacher_epochs": teacher_epochs,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "feature_weight": feature_weight,
        "device": device,
        "small_input": small_input,
        "model_args": dict(model_args) if model_args else None,
        "input_size": parse_input_size(input_size) if input_size is not None else None,
        "mean": tuple(float(v) for v in mean) if mean is not None else None,
        "std": tuple(float(v) for v in std) if std is not None else None,
        "data_root": data_root,
        "data_limit": data_limit,
        "rungs": tuple(rungs) if rungs is not None else None,
        "anchors": anchors,
        **budgets,
    }
    notify = notices_for(notices, show_progress)
    if resume:
        if config is not None or settings is not None:
            raise ConfigError(
                "--config cannot be combined with --resume: a run keeps the settings it was "
                "created with",
                hint="Resume with --resume --out RUN (and --trials, --timeout, --workers, "
                "--device to change how it goes on).",
            )
        return _resume(
            arguments,
            started=started,
            show_progress=show_progress,
            notices=notify,
            trust_model_code=trust_model_code,
        )
    settings = _settings_from_arguments(config, arguments, settings)
    if embedded_default:
        settings = dataclasses.replace(settings, embedded_default=True)
    run, lock = _create_run(settings, show_progress=show_progress, notices=notify)
    try:
        return _run_backend(
            run, settings, planned=settings.trials, started=started, show_progress=show_progress
        )
    finally:
        lock.release()


def _resume(
    arguments: dict[str, Any],
    *,
    started: float,
    show_progress: bool,
    notices: SearchNotices,
    trust_model_code: bool,
) -> SearchResult:
    out = arguments.get("out")
    if out is None:
        raise RunDirectoryError("--resume needs the run directory", hint="Pass --out runs/<name>.")
    run = RunDirectory(out).require()
    lock = RunLock(run.path).acquire()  # before anything is written
    try:
        config = run.read_run_config()
        check_unchanged(config, arguments, run.run_yaml)
        check_model_files(run, config, trusted=trust_model_code)
        check_study(run, config)
        if not run.teacher_pt.is_file() or config.teacher.pending:
            config = _train_pending_teacher(run, config, notices=notices)
        return _resume_locked(run, config, arguments, started=started, show_progress=show_progress)
    finally:
        lock.release()


def _resume_locked(
    run: RunDirectory,
    config: RunConfig,
    arguments: dict[str, Any],
    *,
    started: float,
    show_progress: bool,
) -> SearchResult:
    planned = int(arguments["trials"] or config.trials)
    settings = SearchSettings(
        trials=planned,
        timeout_s=arguments.get("timeout_s") or None,
        sampler=config.sampler.name,
        backend=arguments.get("backend") or config.backend,
        workers=int(arguments.get("workers") or config.workers),
        address=arguments.get("address") or config.address,
        cpus_per_trial=float(arguments.get("cpus_per_trial") or config.resources.cpus_per_trial),
        gpus_per_trial=float(arguments.get("gpus_per_trial") or config.resources.gpus_per_trial),
        chips=config.chips,
        objectives=config.objectives,
    ).validate()
    applied = config.with_resume(
        trials=planned,
        backend=settings.backend,
        workers=settings.workers,
        timeout_s=settings.timeout_s,
        device=arguments.get("device"),
    )
    if applied != config:
        run.write_run_config(applied)
    return _run_backend(
        run, settings, planned=planned, started=started, show_progress=show_progress
    )


def _train_pending_teacher(
    run: RunDirectory, config: RunConfig, *, notices: SearchNotices
) -> RunConfig:
    """A run killed while its teacher trained: get the teacher again, as recorded."""
    given = config.teacher.given_path
    if given is not None and not Path(given).is_file():
        raise RunDirectoryError(
            f"{run.path} has no teacher yet and its given teacher {given!r} is gone",
            hint="Start a new run with --teacher PATH and another --out.",
        )
    data = config.dataset.load()
    spec = config.model
    epochs = int(config.teacher.epochs or 30)
    notices.notice(f"[bold]run[/] {run.path} · teacher: {spec.name} (again: it never finished) …")
    info = obtain_teacher(
        spec=spec,
        data=data,
        dataset_key=config.dataset.cache_key(),
        destination=run.teacher_pt,
        given=given,
        epochs=epochs,
        seed=config.seed,
        device=pick_device(config.finetune.device),
    )
    config = config.with_teacher(_teacher_entry(info, epochs, given))
    run.write_run_config(config)
    return config


def _teacher_entry(
    info: Any, epochs: int, given: str | None, trained_on: dict[str, Any] | None = None
) -> TeacherEntry:
    """run.yaml's teacher entry; a given teacher's epochs are its checkpoint's (None when the
    checkpoint does not say, e.g. a plain state_dict), not the epochs a trained one would get."""
    if info.source == "given":
        recorded = (trained_on or {}).get("epochs")
        epochs = int(recorded) if isinstance(recorded, (int, float)) else None
    return TeacherEntry(
        source=info.source,
        epochs=epochs,
        val_accuracy=info.val_accuracy,
        test_accuracy=info.test_accuracy,
        train_seconds=round(info.train_seconds, 2),
        given_path=str(Path(given).resolve()) if info.source == "given" and given else None,
    )


def check_new_run_dir(out_dir: Path) -> None:
    """Refuse a ``--out`` that is a file, holds a run (without --resume), or holds other files."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise OutputDirError(f"--out {str(out_dir)!r} is a file, not a folder")
    if (out_dir / "run.yaml").exists():
        raise RunDirectoryError(
            f"run directory {str(out_dir)!r} already holds a run",
            hint="Pass --resume to continue it, or another --out.",
        )
    entries = sorted(p.name for p in out_dir.iterdir() if p.name != LOCK_NAME)
    if entries:
        shown = ", ".join(entries[:5]) + (
            f", … ({len(entries) - 5} more)" if len(entries) > 5 else ""
        )
        raise OutputDirError(
            f"--out {str(out_dir)!r} is not empty and is not a run ({len(entries)} entries: "
            f"{shown}); a search writes only into a new or empty folder, nothing was written",
            hint="Pass --out a new folder (e.g. runs/<name>), or --resume --out RUN for a run.",
        )


def _create_run(
    settings: SearchSettings, *, show_progress: bool, notices: SearchNotices
) -> tuple[RunDirectory, Any]:
    """Validate everything, then create the run directory, write run.yaml, get the teacher.

    Returns the run and its held :class:`~autocompress.core.run_lock.RunLock`.
    """
    name = settings.name or prepare.default_run_name(settings)
    out_dir = prepare.resolve_out_dir(settings, name)
    _refuse_if_in_use(out_dir)
    check_new_run_dir(out_dir)  # before any work: a wrong --out costs nothing
    chips = {chip_id: get_chip(chip_id) for chip_id in settings.chips}
    main_chip = chips[settings.chips[0]]
    space = load_space(settings.space)
    if settings.teacher is not None and not Path(settings.teacher).is_file():
        raise CheckpointError(f"teacher checkpoint {settings.teacher!r} does not exist (--teacher)")
    device = pick_device(settings.device)
    # The model and the teacher are checked before the (possibly long) decode of the data.
    described = describe_dataset(settings.dataset, settings.data_root)
    given_teacher, trained_on = None, {}
    if described is not None:
        classes, channels, (h, w) = described
        spec, given_teacher, trained_on = prepare.model_and_teacher(
            settings, classes, channels, settings.input_size or (h, w)
        )
    else:
        prepare.check_before_decode(settings)
    data = prepare.dataset_spec(settings).load()
    c, h, w = data.input_shape
    if described is None or (described[0], described[1], described[2]) != (
        data.num_classes,
        c,
        (h, w),
    ):
        spec, given_teacher, trained_on = prepare.model_and_teacher(
            settings, data.num_classes, c, (h, w)
        )
    split_warning = prepare.teacher_split_warning(settings, trained_on)
    if split_warning is not None:
        notices.notice(f"[yellow]warning:[/] {split_warning}")
    architecture = spec.build().eval()
    prepare.check_forward(architecture, spec, tuple(data.input_shape), data.num_classes)
    input_shape = tuple(data.input_shape)
    quantizable, prunable, out_channels = model_layers(architecture, input_shape)
    full_width = prepare.full_width_layers(architecture, input_shape)
    resolved = resolve_space(
        space, main_chip, quantizable=quantizable, prunable=prunable, out_channels=out_channels
    )
    reference = prepare.cost_of(
        architecture,
        prepare.uniform_config(resolved, list(quantizable_layers(architecture)), 8),
        main_chip,
        input_shape,
        resolved.protect,
    )
    smallest = prepare.cost_of(
        architecture, prepare.smallest_config(resolved), main_chip, input_shape, resolved.protect
    )
    budget, sources = prepare.resolve_budget(settings, main_chip, reference, smallest)
    prepare.check_budget_reachable(budget, smallest, space.name)

    run = RunDirectory(out_dir)
    # Ray workers given GPUs train on CUDA even when this driver has none
    trains_on = "cuda" if device.startswith("cuda") or settings.gpus_per_trial > 0 else "cpu"
    prepared = prepare.PreparedRun(
        settings, data, spec, space, resolved, chips, budget, device_type=trains_on
    )
    config = prepare.run_yaml_content(prepared, name=name, budget_sources=sources)
    if full_width:
        config = config.with_full_width(full_width)
        for reason, layers in prepare.by_reason(full_width).items():
            shown = ", ".join(layers[:4]) + (f", … ({len(layers) - 4} more)" * (len(layers) > 4))
            notices.notice(f"[yellow]kept at full width[/] ({reason}): {shown}")
    created = CreatedPaths()  # what this call made: the only files a failure removes
    created.folder(out_dir)
    lock = RunLock(out_dir)
    try:
        lock.acquire()
    except BaseException:
        created.remove()  # only folders made above: another search holds the lock file
        raise
    if lock.created_file:
        created.own(lock.path)
    try:
        check_new_run_dir(out_dir)  # again, under the lock: another search may have won
        for path in (run.run_yaml, run.study_db, run.teacher_pt):
            created.file(path)
        created.file(run.path / "study.db-journal")
        if is_file_model(spec.name):
            source_copy = run.path / "model_source" / Path(spec.name.rpartition(":")[0]).name
            created.folder(source_copy.parent)
            created.file(source_copy)
            kept_source = keep_model_source(spec.name, out_dir)
            config = config.with_model_source(str(kept_source.relative_to(out_dir)))
        run.write_run_config(config)
        study = open_study(
            run, settings.objectives, make_sampler("random", seed=0, constrained=False)
        )
        if settings.anchors:
            numeric = uses_numeric_encoding(settings.sampler)
            enqueue_anchors(study, resolved, main_chip, numeric=numeric)
            # fits the budget: check_budget_reachable above refused the run otherwise
            cheapest = enqueue_cheapest(study, resolved, main_chip, numeric=numeric)

            def chip_cost(config: TrialConfig) -> Cost:
                return prepare.chip_cost(
                    architecture, config, main_chip, input_shape, resolved.protect
                )

            weights = prepare.layer_weight_counts(architecture)
            fills = budget_fill_params(resolved, main_chip, budget, chip_cost, weights)
            what = ["uniform widths"]
            if cheapest:
                what.append("the cheapest configuration")
            if enqueue_budget_fill(study, resolved, fills, numeric=numeric):
                what.append(
                    f"{len(fills)} budget-filling (a wider width pruned where the chip spends "
                    "its cost, or its cost per weight, to fit the budget)"
                )
            notices.notice("[bold]anchors[/] " + ", then ".join(what))
        notices.notice(
            f"[bold]run[/] {out_dir} · teacher: {settings.model} on {settings.dataset} …"
        )
        info = obtain_teacher(
            spec=spec,
            data=data,
            dataset_key=config.dataset.cache_key(),
            destination=run.teacher_pt,
            given=settings.teacher,
            epochs=prepare.teacher_epochs(settings),
            seed=settings.seed,
            device=device,
            given_model=given_teacher,
        )
        if info.val_accuracy is not None:
            notices.notice(
                f"[bold]baseline[/] teacher ({info.source}): val {info.val_accuracy:.3f} · "
                f"test {info.test_accuracy:.3f} (chance {1 / max(data.num_classes, 1):.3f})"
            )
        teacher = _teacher_entry(
            info, prepare.teacher_epochs(settings), settings.teacher, trained_on
        )
        run.write_run_config(config.with_teacher(teacher))
    except BaseException:
        lock.release()
        if not run.trials_jsonl.exists():  # never remove a run that has finished trials
            created.remove()
        raise
    return run, lock


def _refuse_if_in_use(out_dir: Path) -> None:
    """RunInUseError at once when a live search holds ``out_dir`` (nothing is touched)."""
    RunLock(out_dir).check_free()


def _run_backend(
    run: RunDirectory,
    settings: SearchSettings,
    *,
    planned: int,
    started: float,
    show_progress: bool,
) -> SearchResult:
    started_monotonic = time.monotonic()
    if settings.backend == "ray":
        summary = run_ray_search(
            run,
            planned=planned,
            workers=settings.workers,
            timeout_s=settings.timeout_s,
            address=settings.address,
            cpus_per_trial=settings.cpus_per_trial,
            gpus_per_trial=settings.gpus_per_trial,
            show_progress=show_progress,
        )
    else:
        summary = run_optuna_search(
            run,
            planned=planned,
            workers=settings.workers,
            timeout_s=settings.timeout_s,
            show_progress=show_progress,
        )
    config = run.read_run_config()
    interrupted = bool(summary.interrupted)
    promotion_info: dict[str, Any] = {}
    if not interrupted:
        deadline = None if settings.timeout_s is None else started_monotonic + settings.timeout_s
        promoted = promote(run, config, deadline=deadline, show_progress=show_progress)
        interrupted = promoted.interrupted
        promotion_info = {
            "rung_epochs": rung_epochs(config.finetune.epochs, config.promotion.rungs),
            "promoted": [list(p) for p in promoted.promoted],
            "skipped_for_time": promoted.skipped_for_time,
            "seconds": round(promoted.seconds, 2),
        }
    pareto = update_pareto(run, config)
    records = run.read_trials()
    trained = sum(1 for r in records if r.state in ("complete", "failed"))
    stop_reason = None
    capped = False
    if trained < planned and not interrupted:
        finished = sum(
            1 for r in records if r.state in ("complete", "infeasible", "failed", "duplicate")
        )
        if finished >= proposal_cap(planned):
            capped = True
            stop_reason = (
                f"stopped after {finished} proposals (the cap, 10 × --trials): only {trained} of "
                f"{planned} planned candidates could be trained, the rest broke a budget or "
                "repeated a configuration; relax the budget or widen the space"
            )
        else:
            stop_reason = f"stopped by --timeout after {trained} of {planned} trained trials"
    status = "interrupted" if interrupted else ("stopped" if stop_reason else "complete")
    finished = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    run.write_run_config(config.with_status(status, finished))
    return SearchResult(
        run_dir=run.path,
        chip=config.chip,
        chips=list(config.chips),
        objectives=list(config.objectives),
        trials=records,
        fronts={k: list(v) for k, v in pareto["fronts"].items()},
        interrupted=interrupted or (trained < planned and not capped),
        cancelled=interrupted,
        elapsed_s=time.perf_counter() - started,
        teacher=config.teacher.to_dict(),
        budget=_budget_dict(config),
        budget_sources=dict(config.budget_sources),
        planned=planned,
        stop_reason=stop_reason,
        promotion=promotion_info,
    )


def load_result(run_dir: str | Path) -> SearchResult:
    """A :class:`SearchResult` for a run directory on disk (finished or not)."""
    run = RunDirectory(run_dir).require()
    config = run.read_run_config()
    pareto = compute_fronts(run, config)
    return SearchResult(
        run_dir=run.path,
        chip=config.chip,
        chips=list(config.chips),
        objectives=list(config.objectives),
        trials=run.read_trials(),
        fronts=pareto["fronts"],
        teacher=config.teacher.to_dict(),
        budget=_budget_dict(config),
        budget_sources=dict(config.budget_sources),
    )


def _budget_dict(config: RunConfig) -> dict[str, Any]:
    """Budget name -> value (None: unconstrained), as SearchResult.budget shows it."""
    return {f.name: getattr(config.budget, f.name) for f in dataclasses.fields(config.budget)}
