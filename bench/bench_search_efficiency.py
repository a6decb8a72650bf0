"""Search efficiency: hypervolume of the feasible front against wall-clock time, per sampler.

Runs the same search (same teacher, budget and space) with NSGA-II, TPE and random search, one
after the other in one process, and measures for each:

- the hypervolume of the feasible front (accuracy up, latency_ms down on the main chip; reference
  point accuracy 0, latency = the latency budget) after every finished trial, against the seconds
  since the sampler's first trial started (Optuna's start/complete timestamps in study.db);
- the time each sampler takes to reach the hypervolume random search reaches at the end (goal for
  the default sampler: a third of random's time or less);
- throughput: trials per minute, trained trials per minute.

The latency budget is the embedded default's (halfway between the cheapest configuration of the
space and the teacher at int8), so it binds on any model.

CPU, digits default (3 seeds x 3 samplers x 40 trials):
    python bench/bench_search_efficiency.py --seeds 0 1 2 --trials 40

GPU, CIFAR-10 ResNet-18 (small stem):
    python bench/bench_search_efficiency.py --model resnet18 --dataset cifar10 \
        --chip rockchip/rk3588 --trials 30 --epochs 0.5 --teacher-epochs 15 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any


def hypervolume_curve(run_dir: Path) -> dict[str, Any]:
    """(seconds, hypervolume) after each finished trial of one run, plus throughput."""
    import optuna

    from autocompress.core.pareto import hypervolume
    from autocompress.core.workspace import RunDirectory

    run = RunDirectory(run_dir)
    config = run.read_run_config()
    chip, limit = config["chip"], float(config["budget"]["latency_ms"])
    records = {r.number: r for r in run.read_trials()}
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    finished = [t for t in study.trials if t.datetime_complete is not None and t.number in records]
    start = min(t.datetime_start for t in finished)
    finished.sort(key=lambda t: t.datetime_complete)
    points: list[dict[str, float]] = []
    curve = []
    for trial in finished:
        record = records[trial.number]
        if record.state == "complete" and record.feasible:
            points.append({"accuracy": record.metrics["accuracy"], **record.costs[chip]})
        volume = hypervolume(
            points, ["accuracy", "latency_ms"], {"accuracy": 0.0, "latency_ms": limit}
        )
        curve.append(((trial.datetime_complete - start).total_seconds(), volume))
    total_s = curve[-1][0] if curve else 0.0
    trained = sum(1 for r in records.values() if r.state == "complete")
    return {
        "curve": curve,
        "final_hv": curve[-1][1] if curve else 0.0,
        "seconds": total_s,
        "trials": len(finished),
        "trained": trained,
        "trials_per_min": 60 * len(finished) / total_s if total_s else 0.0,
        "trained_per_min": 60 * trained / total_s if total_s else 0.0,
        "latency_budget_ms": limit,
    }


def time_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    """Seconds until the curve first reaches ``target`` (None: never)."""
    for seconds, volume in curve:
        if volume >= target - 1e-12:
            return seconds
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", nargs="+", default=["nsga2", "tpe", "random"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--chip", default="rockchip/rv1126")
    parser.add_argument("--space", default="default")
    parser.add_argument("--epochs", type=float, default=None, help="fine-tune epochs per trial")
    parser.add_argument("--teacher-epochs", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, default=None, help="images per split")
    parser.add_argument(
        "--seconds-per-sampler",
        type=float,
        default=None,
        help="equal wall-clock budget per sampler",
    )
    parser.add_argument("--out", default="runs/bench-efficiency")
    parser.add_argument("--json", default=None, help="write all numbers (curves included) here")
    args = parser.parse_args()

    import torch

    from autocompress.search.api import search

    out = Path(args.out)
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in args.samplers}
    for seed in args.seeds:
        for sampler in args.samplers:
            run_dir = out / f"{sampler}-seed{seed}-{int(time.time())}"
            started = time.perf_counter()
            search(
                model=args.model,
                dataset=args.dataset,
                chip=args.chip,
                space=args.space,
                sampler=sampler,
                seed=seed,
                trials=args.trials,
                epochs=args.epochs,
                teacher_epochs=args.teacher_epochs,
                device=args.device,
                data_limit=args.limit,
                out=run_dir,
                timeout_s=args.seconds_per_sampler,
                embedded_default=True,
            )
            measured = hypervolume_curve(run_dir)
            measured["seed"], measured["wall_s"], measured["run_dir"] = (
                seed,
                time.perf_counter() - started,
                str(run_dir),
            )
            results[sampler].append(measured)
            if args.json:  # after every run, so a cut-off benchmark keeps what it measured
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(
                    json.dumps({"args": vars(args), "runs": results}, indent=1)
                )
            print(
                f"seed {seed} {sampler:7s} final HV {measured['final_hv']:.6f}  "
                f"{measured['trials']} trials "
                f"({measured['trained']} trained) in {measured['seconds']:.1f} s  "
                f"{measured['trials_per_min']:.1f} trials/min",
                flush=True,
            )

    device = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available() and args.device != "cpu"
        else platform.processor() or "cpu"
    )
    print(
        f"\n{args.model} on {args.dataset}, chip {args.chip}, {args.trials} trials, "
        f"seeds {args.seeds}, device {device}"
    )
    print(
        "| sampler | final HV (mean) | time to random's final HV (median s) "
        "| share of random's time | trials/min | trained/min |"
    )
    print("|---|---|---|---|---|---|")
    summary = {}
    for sampler in args.samplers:
        reach, shares = [], []
        for index, measured in enumerate(results[sampler]):
            baseline = results.get("random", [None] * (index + 1))[index]
            if baseline is None:
                continue
            seconds = time_to_reach(measured["curve"], baseline["final_hv"])
            if seconds is not None:
                reach.append(seconds)
                shares.append(
                    seconds / baseline["seconds"] if baseline["seconds"] else float("nan")
                )
        final = statistics.mean(m["final_hv"] for m in results[sampler])
        tpm = statistics.mean(m["trials_per_min"] for m in results[sampler])
        trained = statistics.mean(m["trained_per_min"] for m in results[sampler])
        reached = (
            f"{statistics.median(reach):.1f} ({len(reach)}/{len(results[sampler])} seeds)"
            if reach
            else "never"
        )
        share = f"{statistics.median(shares):.2f}" if shares else "-"
        print(f"| {sampler} | {final:.6f} | {reached} | {share} | {tpm:.1f} | {trained:.1f} |")
        summary[sampler] = {"final_hv_mean": final, "reach_s": reach, "share_of_random": shares}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {"args": vars(args), "device": device, "summary": summary, "runs": results},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
