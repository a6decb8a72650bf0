"""Ray Tune backend: speed-up of 2 GPUs over 1 on the same search (goal >= 1.8x).

Runs the same search twice with ``--backend ray --gpus-per-trial 1``: once with one concurrent
trial, once with two. The sampler is random with the same seed, so both runs try the same
configurations; the budget is loose (every trial is trained) so the work per trial is comparable.
The speed-up is the ratio of the trial phase's wall-clock (first trial start to last trial end,
Optuna's timestamps in study.db); teacher training (cached after the first run) and Ray's
start-up are reported separately.

    python bench/bench_ray_scaling.py --model resnet18 --dataset cifar10 --trials 16 --epochs 0.5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def trial_phase_seconds(run_dir: Path) -> tuple[float, int]:
    """Seconds from the first trial's start to the last trial's end, and the trial count."""
    import optuna

    from autocompress.core.workspace import RunDirectory

    run = RunDirectory(run_dir)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    done = [t for t in study.trials if t.datetime_complete is not None]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    return (end - start).total_seconds(), len(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--chip", default="rockchip/rk3588")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=float, default=0.5)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--gpus", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--cpus-per-trial", type=float, default=4)
    parser.add_argument("--gpus-per-trial", type=float, default=1, help="0: a CPU smoke test")
    parser.add_argument("--out", default="runs/bench-ray")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    from autocompress.search.api import search

    results = {}
    for workers in args.gpus:
        run_dir = Path(args.out) / f"ray-{workers}gpu-{int(time.time())}"
        started = time.perf_counter()
        result = search(
            model=args.model,
            dataset=args.dataset,
            chip=args.chip,
            latency_ms="1000%",
            sampler="random",
            seed=0,
            trials=args.trials,
            epochs=args.epochs,
            teacher_epochs=args.teacher_epochs,
            backend="ray",
            workers=workers,
            gpus_per_trial=args.gpus_per_trial,
            cpus_per_trial=args.cpus_per_trial,
            out=run_dir,
        )
        wall = time.perf_counter() - started
        phase, finished = trial_phase_seconds(run_dir)
        results[workers] = {
            "trial_phase_s": phase,
            "trials": finished,
            "trained": result.counts.get("complete", 0),
            "wall_s": wall,
            "trials_per_min": 60 * finished / phase,
            "teacher_source": result.teacher.get("source"),
        }
        print(f"{workers} GPU(s): {json.dumps(results[workers])}", flush=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(
        f"\n{args.model} on {args.dataset}, {args.trials} trials, "
        f"{args.epochs} epochs/trial, {device}"
    )
    print("| GPUs | trial phase s | trials/min | speed-up |")
    print("|---|---|---|---|")
    base = results[args.gpus[0]]["trial_phase_s"]
    for workers, measured in results.items():
        speedup = base / measured["trial_phase_s"]
        print(
            f"| {workers} | {measured['trial_phase_s']:.1f} | {measured['trials_per_min']:.1f} "
            f"| {speedup:.2f}x |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "device": device, "results": results})
        )


if __name__ == "__main__":
    main()
