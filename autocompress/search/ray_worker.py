"""Long-lived Ray workers: each loads a run's trial inputs once, then runs many trials.

One worker per ``--workers`` slot (per GPU with ``--gpus-per-trial 1``) is two
Ray actors on the same node:

- :class:`TrialTrainer` (``--cpus-per-trial`` CPUs, ``--gpus-per-trial`` GPUs)
  loads the data, the teacher and the teacher's logits once (seconds on
  CIFAR-10) and fine-tunes, evaluates and saves one student after another
  (:func:`~autocompress.search.objective.train_built`);
- :class:`StudentBuilder` (no reserved resources; one CPU thread) loads the
  teacher and the chips only, and builds and costs the next students
  (:func:`~autocompress.search.objective.build_and_cost`: physical pruning,
  quantization wrappers, layer extraction, costing on every chip) while the
  trainer trains. A built student goes from the builder to the trainer through
  Ray's object store, not through the driver.

Two processes, not two threads of one actor: building a student traces it with
``torch.fx``, which patches ``nn.Module.__call__`` for the whole process, so a
trace next to a training step in another thread breaks both. An infeasible
proposal ends at the builder and never takes the trainer's GPU.

The classes are plain Python; :func:`remote_trainer_class` wraps them with
``ray.remote`` (importing this module does not need Ray).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

#: Trials the driver keeps on one worker: one training, the next one being built.
TRIALS_PER_WORKER = 2


def _quiet_workers() -> None:
    """The driver already told the user about plugin problems and damaged lines."""
    from autocompress.core.errors import RunFileWarning
    from autocompress.hardware.plugins import PluginWarning

    warnings.filterwarnings("ignore", category=PluginWarning)
    warnings.simplefilter("ignore", RunFileWarning)


class StudentBuilder:
    """Builds and costs students of one run on the CPU (the half of a trial without data)."""

    def __init__(self, run_path: str) -> None:
        self.run_path = run_path
        self._ctx: Any = None

    def _context(self) -> Any:
        if self._ctx is None:
            import torch

            from autocompress.search.context import load_context

            _quiet_workers()
            torch.set_num_threads(1)  # next to a trainer: one core, not the trainer's
            self._ctx = load_context(self.run_path, device="cpu", backend="ray", with_data=False)
        return self._ctx

    def start(self) -> bool:
        """Load the teacher, the chips and the space (once)."""
        self._context()
        return True

    def build(self, number: int, config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """(summary, built): summary has ``outcome`` (the final outcome of an infeasible or failed
        trial, as :func:`~autocompress.search.objective.outcome_to_dict`) or ``built_s``; built
        is the :class:`~autocompress.search.objective.BuiltStudent` to train, or None."""
        from autocompress.core.trial_config import TrialConfig
        from autocompress.search.objective import TrialOutcome, build_and_cost, outcome_to_dict

        built = build_and_cost(self._context(), number, TrialConfig.from_dict(config))
        if isinstance(built, TrialOutcome):
            return {"outcome": outcome_to_dict(built)}, None
        summary = {"built_s": built.seconds, "built_at": time.time()}
        return summary | {"student_key": built.student_key}, built


class TrialTrainer:
    """Trains built students of one run on the resources Ray gave this actor."""

    def __init__(self, run_path: str, device: str, threads: int) -> None:
        import ray

        self.run_path = run_path
        self.device = device
        self.threads = max(1, int(threads))
        self._ctx: Any = None
        self.load_s = 0.0
        self._last_end: float | None = None  # wall time the previous trial's training ended
        # The builder lives on this node, owned by this actor (it dies with it).
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = ray.get_runtime_context().get_node_id()
        self.builder = (
            ray.remote(StudentBuilder)
            .options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True),
            )
            .remote(run_path)
        )
        self._builder_ready = self.builder.start.remote()

    def _context(self) -> Any:
        if self._ctx is None:
            import torch

            from autocompress.search.context import load_context, pick_device

            _quiet_workers()
            torch.set_num_threads(self.threads)
            started = time.perf_counter()
            self._ctx = load_context(self.run_path, device=pick_device(self.device), backend="ray")
            self.load_s = time.perf_counter() - started
        return self._ctx

    def start(self) -> dict[str, Any]:
        """Load the data, the teacher and its logits (once); wait for the builder. Returns the
        builder's handle and where this worker runs."""
        import os
        import socket

        import ray

        ctx = self._context()
        ray.get(self._builder_ready)
        return {
            "builder": self.builder,
            "device": ctx.device,
            "load_s": round(self.load_s, 3),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    def train(self, built: Any, built_at: float | None = None) -> dict[str, Any]:
        """Fine-tune, evaluate and save a :class:`~autocompress.search.objective.BuiltStudent`
        (built at wall time ``built_at``); the trial's outcome as a dict. On every trial but the
        worker's first, ``timings_s`` gets ``worker_idle`` (seconds this worker sat idle since
        its previous trial) and ``built_ahead`` (seconds the student was ready before the
        worker was free: > 0 when building overlapped the previous trial's training)."""
        from autocompress.search.objective import outcome_to_dict, train_built

        ctx = self._context()
        extra: dict[str, float] = {}
        if self._last_end is not None:
            extra["worker_idle"] = round(time.time() - self._last_end, 6)
            if built_at is not None:
                extra["built_ahead"] = round(self._last_end - built_at, 6)
        try:
            outcome = train_built(ctx, built)
        finally:
            self._last_end = time.time()
        if extra:
            timings = {**outcome.record.timings_s, **extra}
            record = dataclasses.replace(outcome.record, timings_s=timings)
            outcome = dataclasses.replace(outcome, record=record)
        return outcome_to_dict(outcome)


def remote_trainer_class() -> Any:
    """:class:`TrialTrainer` as a Ray actor class."""
    import ray

    return ray.remote(TrialTrainer)
