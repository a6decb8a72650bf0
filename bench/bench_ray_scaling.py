"""Ray backend: trained trials per hour with 1, 2 (4) workers on the same search, via the CLI.

Runs ``autocompress search --backend ray`` once per worker count, with the same settings: random
sampler with seed 0 (every run proposes the same configurations), a loose latency budget (every
proposal is trained), no anchors, no promotion (``--rungs 1``). On a GPU machine the search is
CIFAR-10 ResNet-18 with one GPU per worker; without one (or with ``--cpu``) it is small_cnn on the
digits with one CPU per worker.

Reported per run, from ``study.db`` and ``trials.jsonl``:

- trial phase: first proposal asked to last result told (the driver asks once a worker has
  started, so the first worker's start-up — data, teacher, teacher logits — is not in it;
  ``wall_s`` is the whole command, teacher and Ray start-up included);
- trained trials per hour over the trial phase, and the speed-up over the first worker count;
- ``outside_finetune``: per trained trial, the share of its own time (``total``) not spent in
  the fine-tune — building, costing, evaluation, saving — averaged over the trials (the builder
  does the building and costing next to the previous trial's fine-tune, so this is not all
  on the critical path);
- ``worker_idle``: the share of the workers' time in the trial phase not spent in a fine-tune
  (1 − Σ fine-tune s / (workers × trial phase s)): what the GPUs really lose.

    python bench/bench_ray_scaling.py --workers 1 2 --trials 32 --epochs 1        # GPUs
    python bench/bench_ray_scaling.py --cpu --workers 1 2 --trials 32 --epochs 1  # digits, CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def measure(run_dir: Path, workers: int) -> dict[str, float]:
    """The numbers of one finished run (see the module docstring)."""
    import optuna

    from autocompress.core.workspace import RunDirectory

    run = RunDirectory(run_dir)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    done = [t for t in study.trials if t.datetime_complete is not None]
    start = min(t.datetime_start for t in done)
    end = max(t.datetime_complete for t in done)
    phase = (end - start).total_seconds()
    trained = [r for r in run.read_trials() if r.state in ("complete", "failed")]
    finetune = sum(float(r.timings_s.get("finetune", 0.0)) for r in trained)
    outside = [
        1.0 - float(r.timings_s.get("finetune", 0.0)) / float(r.timings_s["total"])
        for r in trained
        if float(r.timings_s.get("total", 0.0)) > 0
    ]
    idle_gaps = [float(r.timings_s["worker_idle"]) for r in trained if "worker_idle" in r.timings_s]
    return {
        "trial_phase_s": round(phase, 2),
        "trained": len(trained),
        "trained_per_hour": round(3600 * len(trained) / phase, 1),
        "finetune_s_mean": round(finetune / max(1, len(trained)), 3),
        "outside_finetune": round(sum(outside) / max(1, len(outside)), 4),
        "worker_idle": round(1.0 - finetune / (workers * phase), 4),
        "idle_gap_s_mean": round(sum(idle_gaps) / max(1, len(idle_gaps)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--cpu", action="store_true", help="digits on CPU even with a GPU")
    parser.add_argument("--model", default=None)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--chip", default="rockchip/rk3588")
    parser.add_argument("--teacher-epochs", type=int, default=None)
    parser.add_argument("--cpus-per-trial", type=float, default=None)
    parser.add_argument("--out", default="runs/bench-ray")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    gpu = torch.cuda.is_available() and not args.cpu
    model = args.model or ("resnet18" if gpu else "small_cnn")
    dataset = args.dataset or ("cifar10" if gpu else "digits")
    teacher_epochs = args.teacher_epochs or (8 if gpu else 3)
    cpus = args.cpus_per_trial or (4 if gpu else 1)
    device = torch.cuda.get_device_name(0) if gpu else f"cpu ({os.cpu_count()} cores)"
    results: dict[int, dict[str, float]] = {}
    stamp = int(time.time())
    for workers in args.workers:
        run_dir = Path(args.out) / f"ray-{workers}w-{stamp}"
        command = [
            sys.executable, "-m", "autocompress", "search", "--backend", "ray",
            "--workers", str(workers), "--trials", str(args.trials),
            "--epochs", str(args.epochs), "--model", model, "--dataset", dataset,
            "--chip", args.chip, "--latency-ms", "1000%", "--sampler", "random", "--seed", "0",
            "--teacher-epochs", str(teacher_epochs), "--no-anchors", "--rungs", "1",
            "--cpus-per-trial", str(cpus), "--gpus-per-trial", "1" if gpu else "0",
            "--device", "cuda" if gpu else "cpu", "--out", str(run_dir), "--no-progress",
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        results[workers] = {**measure(run_dir, workers), "wall_s": time.perf_counter() - started}
        print(f"{workers} worker(s): {json.dumps(results[workers])}", flush=True)

    print(f"\n{model} on {dataset}, {args.trials} trials, {args.epochs:g} epoch(s)/trial, {device}")
    print("| workers | trial phase s | trained/h | speed-up | outside fine-tune | worker idle |")
    print("|---|---|---|---|---|---|")
    base = results[args.workers[0]]["trained_per_hour"]
    for workers, m in results.items():
        print(
            f"| {workers} | {m['trial_phase_s']:.1f} | {m['trained_per_hour']:.0f} "
            f"| {m['trained_per_hour'] / base:.2f}× | {m['outside_finetune']:.1%} "
            f"| {m['worker_idle']:.1%} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "device": device, "results": results}, indent=1)
        )


if __name__ == "__main__":
    main()
