"""The Ray Tune backend: Optuna as Tune's search algorithm, trials on Ray workers.

- A local Ray runtime by default; ``address`` joins a cluster (the run
  directory must then be on a filesystem every node sees: workers read
  ``run.yaml``/``teacher.pt`` and write ``students/``).
- Optuna suggests through Ray's ``OptunaSearch`` on the run's own ``study.db``,
  with the same sampler and the same define-by-run space as the Optuna backend;
  the searcher re-applies each trial's budget constraints in the driver (the
  constraints adapter), so constrained samplers behave the same.
- The driver writes ``trials.jsonl`` and ``pareto.json``: the run directory has
  exactly the Optuna backend's format, and report/export do not care which ran.
- Resources per trial: ``cpus_per_trial``, ``gpus_per_trial``; ``workers`` is
  the number of concurrent trials.
- Resume: the driver is the only process that asks and tells the study, so a
  trial still RUNNING in ``study.db`` when a session starts was left by a killed
  driver; it is failed and re-enqueued with the same parameters (as the Optuna
  backend's heartbeat does).
- Ray's own failures (the runtime cannot start or be joined, resources a trial
  can never get, a trial that crashes its worker) are :class:`RayBackendError`:
  the CLI prints them and exits 2; finished trials stay recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from autocompress.core.errors import AutocompressError, ConfigError
from autocompress.core.run_config import RunConfig
from autocompress.core.trial_config import TrialConfig
from autocompress.core.workspace import RunDirectory, TrialRecord
from autocompress.search.optuna_backend import WorkerSummary

_CONTEXTS: dict[tuple[str, str], Any] = {}


class RayBackendError(AutocompressError):
    """Ray could not run the search: the runtime, the cluster's resources, or a crashed worker."""


def _context(run_path: str, device: str) -> Any:
    """One SearchContext per worker process (reused when Ray reuses the actor)."""
    from autocompress.search.context import load_context

    key = (run_path, device)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = load_context(run_path, device=device, backend="ray")
    return _CONTEXTS[key]


def _make_trainable(run_path: str, device: str, threads: int) -> Any:
    def trainable(params: dict[str, Any]) -> None:
        import warnings

        import torch
        from ray import tune

        from autocompress.hardware.plugins import PluginWarning
        from autocompress.search.objective import run_trial

        # The driver already told the user about plugin problems.
        warnings.filterwarnings("ignore", category=PluginWarning)

        torch.set_num_threads(max(1, threads))
        ctx = _context(run_path, device)  # load_context resolves "auto" (pick_device)
        number = int(params["trial_number"])
        outcome = run_trial(ctx, number, TrialConfig.from_dict(params["trial_config"]))
        metrics: dict[str, Any] = {
            "record_json": json.dumps(outcome.record.to_dict()),
            "constraints_json": json.dumps(outcome.constraint_values),
            "trial_state": outcome.record.state,
        }
        for name, value in zip(ctx.objectives, outcome.objective_values, strict=False):
            metrics[name] = value
        tune.report(metrics)

    return trainable


def _searcher_class() -> type:
    from ray.tune.search.optuna import OptunaSearch

    from autocompress.search.constraints import record_constraints
    from autocompress.search.study import FAILED_ATTR, INFEASIBLE_ATTR

    class ConstrainedOptunaSearch(OptunaSearch):
        """OptunaSearch that records budget constraints (and failures) before ``tell``."""

        def __init__(self, *args: Any, constraint_names: list[str], **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._constraint_names = constraint_names

        def on_trial_complete(
            self, trial_id: str, result: dict | None = None, error: bool = False
        ) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is not None and result and "trial_state" in result:
                state = result["trial_state"]
                if state == "failed":
                    record = json.loads(result["record_json"])
                    ot_trial.set_user_attr(FAILED_ATTR, record.get("error") or "failed")
                    return super().on_trial_complete(trial_id, None, error=True)
                if state == "infeasible":
                    ot_trial.set_user_attr(INFEASIBLE_ATTR, True)
                record_constraints(
                    ot_trial, json.loads(result["constraints_json"]), self._constraint_names
                )
            return super().on_trial_complete(trial_id, result, error)

        def save(self, checkpoint_path: str) -> None:
            """Nothing to save: the study lives in the run's study.db."""

        def restore(self, checkpoint_path: str) -> None:
            """Nothing to restore: resume reads the run's study.db."""

    return ConstrainedOptunaSearch


def _callback_class() -> type:
    from ray.tune import Callback

    class RunDirectoryWriter(Callback):
        """Writes each finished trial to trials.jsonl and refreshes pareto.json (driver side)."""

        def __init__(self, run: RunDirectory, config: RunConfig, progress: Any) -> None:
            self.run = run
            self.config = config
            self.progress = progress
            self.finished = 0

        def __getstate__(self) -> dict[str, Any]:
            # tune.Tuner pickles its settings, callbacks included, into tuner.pkl (for
            # Tuner.restore, which autocompress never uses: --resume reads study.db). The
            # live progress line holds locks and cannot be pickled; it stays in the driver.
            from autocompress.search.progress import SearchProgress

            state = dict(self.__dict__)
            state["progress"] = SearchProgress(enabled=False, planned=self.progress.planned)
            return state

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            from autocompress.search.front import update_pareto

            result = trial.last_result or {}
            if "record_json" not in result:
                return
            record = TrialRecord.from_dict(json.loads(result["record_json"]))
            self.run.append_trial(record)
            self.finished += 1
            pareto = update_pareto(self.run, self.config)
            records = self.run.read_trials()
            self.progress.finished(
                done=self.progress.done + 1,
                front_size=len(pareto["fronts"].get(self.config.chip, [])),
                feasible=sum(1 for r in records if r.feasible and r.state == "complete"),
                last=f"trial {record.number} {record.state}",
            )

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            number = (trial.config or {}).get("trial_number", "?")
            self.progress.stage(number, "running on a Ray worker")

    return RunDirectoryWriter


def run_ray_search(
    run: RunDirectory,
    *,
    planned: int,
    workers: int,
    timeout_s: float | None,
    address: str | None,
    cpus_per_trial: float,
    gpus_per_trial: float,
    show_progress: bool,
) -> WorkerSummary:
    """Run the remaining trials of ``run`` with Ray Tune."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError(
            "the Ray backend needs Ray Tune",
            hint="pip install 'ray[tune]' (or use --backend optuna)",
        ) from None
    import optuna

    from autocompress.core.models import load_checkpoint
    from autocompress.hardware.plugins import get_chip
    from autocompress.search.context import resolve_for_model
    from autocompress.search.progress import SearchProgress
    from autocompress.search.samplers import make_sampler
    from autocompress.search.study import (
        STUDY_NAME,
        counted_trials,
        directions,
        retry_orphaned_trials,
        suggest_config,
    )

    config = run.read_run_config()
    objectives = list(config.objectives)
    storage = optuna.storages.RDBStorage(
        run.storage_url, engine_kwargs={"connect_args": {"timeout": 60}}
    )
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    retry_orphaned_trials(study)
    done = counted_trials(study)
    remaining = planned - done
    summary = WorkerSummary()
    if remaining <= 0:
        return summary

    teacher, _spec, _extra = load_checkpoint(run.teacher_pt)
    input_shape = config.input_shape
    space = resolve_for_model(
        dict(config.space.definition),
        f"{run.run_yaml} (space)",
        teacher,
        input_shape,
        get_chip(config.chip),
    )
    constraint_names = sorted(config.budget.active())

    def define_by_run(trial: Any) -> dict[str, Any]:
        trial_config = suggest_config(trial, space)
        return {"trial_config": trial_config.to_dict(), "trial_number": trial.number}

    sampler = make_sampler(
        config.sampler.name,
        seed=config.sampler.seed + len(study.trials),
        constrained=bool(constraint_names),
    )
    searcher = _searcher_class()(
        space=define_by_run,
        metric=objectives,
        mode=["max" if d == "maximize" else "min" for d in directions(objectives)],
        sampler=sampler,
        study_name=STUDY_NAME,
        storage=storage,
        constraint_names=constraint_names,
    )

    started_here = False
    if not ray.is_initialized():
        _start_ray(ray, address, run.path)
        started_here = True
    scratch = tempfile.mkdtemp(prefix="autocompress-ray-")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        _check_resources(ray, cpus_per_trial, gpus_per_trial, address)
        device = config.finetune.device
        if gpus_per_trial > 0 and device == "auto":
            device = "cuda"
        trainable = tune.with_resources(
            _make_trainable(str(run.path.resolve()), device, int(max(1, cpus_per_trial))),
            {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
        )
        with SearchProgress(enabled=show_progress, planned=planned, done=done) as progress:
            writer = _callback_class()(run, config, progress)
            results = None
            try:
                tuner = tune.Tuner(
                    trainable,
                    tune_config=tune.TuneConfig(
                        search_alg=searcher,
                        num_samples=remaining,
                        max_concurrent_trials=workers,
                        reuse_actors=True,
                        time_budget_s=timeout_s,
                    ),
                    run_config=tune.RunConfig(
                        name="autocompress",
                        storage_path=scratch,
                        verbose=0,
                        callbacks=[writer],
                        log_to_file=False,
                    ),
                )
                results = tuner.fit()
            except KeyboardInterrupt:
                summary.interrupted = True
            except Exception as exc:  # Tune's own failure, not a trial's (those are recorded)
                raise RayBackendError(
                    f"Ray Tune stopped the search of {run.path}: "
                    f"{type(exc).__name__}: {_gist(exc)}",
                    hint=_resume_hint(run.path) + " AUTOCOMPRESS_DEBUG=1 shows the traceback.",
                ) from exc
            summary.trials_run = writer.finished
        if results is not None and results.errors:
            raise RayBackendError(
                f"{len(results.errors)} Ray trial(s) of {run.path} crashed on their worker "
                f"and were not recorded: {_gist(results.errors[0])}",
                hint=_resume_hint(run.path),
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if started_here:
            ray.shutdown()
    return summary


def _resume_hint(run_path: Path) -> str:
    return (
        f"Finished trials are saved; `autocompress search --resume --out {run_path}` continues "
        "the run (add --backend optuna to run without Ray)."
    )


def _gist(exc: BaseException) -> str:
    """The last non-empty line of an error's text (Ray wraps the cause in a traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _start_ray(ray: Any, address: str | None, run_path: Path) -> None:
    """Start (or join, with ``address``) a Ray runtime; RayBackendError when Ray cannot."""
    import logging

    init_kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        # Ray's start-up INFO lines are not for autocompress users; its errors still show.
        "logging_level": logging.ERROR,
    }
    if address:
        init_kwargs["address"] = address
    try:
        ray.init(**init_kwargs)
    except Exception as exc:
        where = f"join the Ray cluster at {address!r}" if address else "start a local Ray runtime"
        check = "Check the address (`ray status` on the cluster)" if address else "Check Ray"
        raise RayBackendError(
            f"could not {where} (--backend ray): {type(exc).__name__}: {_gist(exc)}",
            hint=f"{check}; the run in {run_path} is kept: `autocompress search --resume "
            f"--out {run_path}` continues it (add --backend optuna to run without Ray).",
        ) from exc


def _check_resources(
    ray: Any, cpus_per_trial: float, gpus_per_trial: float, address: str | None
) -> None:
    """RayBackendError when a trial asks for more than the whole cluster has (it would wait
    forever)."""
    total = ray.cluster_resources()
    where = f"the Ray cluster at {address!r}" if address else "the local Ray runtime"
    for flag, wanted, key in (
        ("--cpus-per-trial", cpus_per_trial, "CPU"),
        ("--gpus-per-trial", gpus_per_trial, "GPU"),
    ):
        have = float(total.get(key, 0.0))
        if wanted > have:
            raise RayBackendError(
                f"{flag} {wanted:g} can never be scheduled: {where} has {have:g} {key}(s)",
                hint=f"Pass {flag} {have:g} or less.",
            )


def ray_scratch_dir() -> Path:
    """Where Ray keeps its own trial folders (outside the run directory)."""
    return Path(tempfile.gettempdir())
