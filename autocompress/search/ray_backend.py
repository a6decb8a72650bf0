"""The Ray backend: long-lived Ray actors run the trials, the driver asks and tells Optuna.

- A fresh local Ray runtime by default; ``address`` joins a cluster (``ray start
  --head`` on one machine, ``ray start --address=HEAD:6379`` on the others,
  then ``--address auto`` on the head; see docs/distributed.md). The run
  directory must then be on a filesystem every node sees: workers read
  ``run.yaml``/``teacher.pt`` and write ``students/``.
- ``workers`` long-lived workers (:mod:`autocompress.search.ray_worker`), each a
  trainer actor with ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs (one
  per GPU) plus a builder actor on the same node. The trainer loads the data,
  the teacher and its teacher logits once and trains many trials; the builder
  builds and costs the next trial's student (CPU work) while the current one
  fine-tunes, and infeasible proposals never reach the GPU.
- The driver (:mod:`autocompress.search.ray_driver`) is the only process that
  asks and tells the run's ``study.db``, with the same sampler (TPE with the
  constant liar by default), the same define-by-run space, the same duplicate
  handling, ``--trials`` counting, anchors and constraints as the Optuna
  backend. It writes ``trials.jsonl`` and ``pareto.json``: the run directory has
  exactly the Optuna backend's format, and report/export do not care which ran.
  Promotion runs after the search in the driver, as with the Optuna backend.
- Resume: a trial still RUNNING in ``study.db`` when a session starts was left
  by a killed driver; it is failed and re-enqueued with the same parameters.
- Ray's own failures (the runtime cannot start or be joined, resources a trial
  can never get, a worker that dies) are :class:`RayBackendError`: the CLI
  prints them and exits 2; finished trials stay recorded.

Why plain actors and not Ray Tune: Tune's ``OptunaSearch`` tells Optuna inside
Tune's event loop (a failing tell left the trial RUNNING), counts every
proposal as a Tune sample (no duplicates, no "trained trials" plan), and its
``reuse_actors`` still runs one trial per actor at a time through a
function-trainable wrapper, so the next trial's CPU work cannot overlap the
GPU work. An ask/tell loop over a few actors is a few hundred lines that this
project controls: the pending-trial limit is ours (two per worker), every tell
is guarded, and Ctrl-C leaves no RUNNING trial.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from autocompress.core.errors import AutocompressError, ConfigError
from autocompress.core.models import load_checkpoint
from autocompress.core.workspace import RunDirectory
from autocompress.hardware.plugins import get_chip
from autocompress.search.context import load_context, resolve_for_model
from autocompress.search.optuna_backend import WorkerSummary, session_seed
from autocompress.search.progress import SearchProgress
from autocompress.search.ray_driver import AskTellDriver, WorkerCrashed, gist
from autocompress.search.ray_worker import TRIALS_PER_WORKER, remote_trainer_class
from autocompress.search.recover import recover_missing_records, settle_finished_orphans
from autocompress.search.samplers import make_sampler, tells_infeasible, uses_numeric_encoding
from autocompress.search.study import (
    FAILED_ATTR,
    STUDY_NAME,
    open_study,
    proposal_cap,
    proposals,
    retry_orphaned_trials,
    trained_trials,
)


class RayBackendError(AutocompressError):
    """Ray could not run the search: the runtime, the cluster's resources, or a crashed worker."""


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
    """Run the remaining trials of ``run`` on ``workers`` Ray actors."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the Ray backend needs Ray",
            hint="pip install ray (or use --backend optuna)",
        ) from None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    config = run.read_run_config()
    objectives = list(config.objectives)
    storage = optuna.storages.RDBStorage(
        run.storage_url, engine_kwargs={"connect_args": {"timeout": 60}}
    )
    existing = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
    constraint_names = sorted(config.budget.active())
    sampler_name = config.sampler.name
    sampler = make_sampler(
        sampler_name,
        seed=session_seed(config.sampler.seed, 0, existing),
        constrained=bool(constraint_names),
    )
    study = open_study(run, objectives, sampler, storage)
    # a trial the killed driver trained and recorded is told, not trained again
    settle_finished_orphans(
        run, study, objectives=objectives, main_chip=config.chip, constraint_names=constraint_names
    )
    retry_orphaned_trials(study)
    _recover_records(run, study)
    summary = WorkerSummary()
    done = trained_trials(study)
    if done >= planned or proposals(study) >= proposal_cap(planned):
        return summary

    teacher, _spec, _extra = load_checkpoint(run.teacher_pt)
    space = resolve_for_model(
        dict(config.space.definition),
        f"{run.run_yaml} (space)",
        teacher,
        config.input_shape,
        get_chip(config.chip),
    )
    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    started_here = False
    if not ray.is_initialized():
        _start_ray(ray, address, run.path)
        started_here = True
    actors: list[Any] = []
    driver: AskTellDriver | None = None
    crash: WorkerCrashed | None = None
    try:
        _check_resources(ray, cpus_per_trial, gpus_per_trial, address)
        device = str(config.finetune.device)
        if gpus_per_trial > 0 and device == "auto":
            device = "cuda"
        actor_class = remote_trainer_class().options(
            num_cpus=cpus_per_trial, num_gpus=gpus_per_trial
        )
        threads = int(max(1, cpus_per_trial))
        with SearchProgress(
            enabled=show_progress, planned=planned, done=done, workers=workers
        ) as progress:
            driver = AskTellDriver(
                run,
                study,
                space=space,
                config=config,
                constraint_names=constraint_names,
                numeric=uses_numeric_encoding(sampler_name),
                tell_infeasible=tells_infeasible(sampler_name),
                planned=planned,
                deadline=deadline,
                progress=progress,
            )
            try:
                actors = [
                    actor_class.remote(str(run.path.resolve()), device, threads)
                    for _ in range(workers)
                ]
                for actor in actors:
                    driver.add_worker(actor)
                driver.loop(TRIALS_PER_WORKER)
            except KeyboardInterrupt:
                summary.interrupted = True
            except WorkerCrashed as exc:
                crash = exc
            except AutocompressError:
                raise
            except Exception as exc:  # Ray's own failure, not a trial's (those are recorded)
                raise RayBackendError(
                    f"Ray stopped the search of {run.path}: {type(exc).__name__}: {gist(exc)}",
                    hint=_resume_hint(run.path) + " AUTOCOMPRESS_DEBUG=1 shows the traceback.",
                ) from exc
            finally:
                for actor in actors:  # before the trials are closed: no late student files
                    ray.kill(actor)
                driver.close()
            summary.trials_run = driver.summary.proposals_run
        if crash is not None:
            raise RayBackendError(
                f"{crash.count} Ray trial(s) of {run.path} crashed on their worker "
                f"and were not recorded: {crash.detail}",
                hint=_resume_hint(run.path) + " The crashed trials are queued to run again.",
            )
    finally:
        if started_here:
            ray.shutdown()
    return summary


def _recover_records(run: RunDirectory, study: Any) -> None:
    """Append the records study.db has and trials.jsonl lacks (see
    :mod:`autocompress.search.recover`), in the driver: rebuilding one needs the teacher and
    the chips, not the data."""
    import optuna

    have = {record.number for record in run.read_trials()}
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    if any(
        t.number not in have
        and (t.state == optuna.trial.TrialState.COMPLETE or t.user_attrs.get(FAILED_ATTR))
        for t in study.get_trials(deepcopy=False, states=finished)
    ):
        ctx = load_context(run.path, device="cpu", backend="ray", with_data=False)
        recover_missing_records(ctx, study)


def _resume_hint(run_path: Path) -> str:
    return (
        f"Finished trials are saved; `autocompress search --resume --out {run_path}` continues "
        "the run (add --backend optuna to run without Ray)."
    )


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
        # Workers on other nodes do not inherit this process's environment: pass on the
        # settings autocompress reads from it (the calibration, the data and cache folders).
        forwarded = {k: v for k, v in os.environ.items() if k.startswith("AUTOCOMPRESS_")}
        if forwarded:
            init_kwargs["runtime_env"] = {"env_vars": forwarded}
    else:
        init_kwargs["address"] = "local"  # a fresh runtime, even next to a `ray start` one
    try:
        ray.init(**init_kwargs)
    except Exception as exc:
        where = f"join the Ray cluster at {address!r}" if address else "start a local Ray runtime"
        check = "Check the address (`ray status` on the cluster)" if address else "Check Ray"
        raise RayBackendError(
            f"could not {where} (--backend ray): {type(exc).__name__}: {gist(exc)}",
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
