"""Search efficiency: hypervolume of the feasible front against wall-clock time, per sampler.

Runs the same search (same teacher, budget and space) with each sampler (TPE, GP, NSGA-II,
random; ``random-plain`` is random search without the uniform-scaling anchors, the naive
baseline), one after the other in one process, with promotion off so every trial has the same
fidelity, and measures for each:

- the hypervolume of the feasible front (accuracy up, latency_ms down on the main chip; reference
  point accuracy 0, latency = the latency budget) after every finished trial, against the seconds
  since the sampler's first trial started (Optuna's start/complete timestamps in study.db), and
  against the number of trained trials (independent of the machine's load);
- the time (and the trained trials) each sampler takes to reach the hypervolume plain random
  search reaches at the end (goal for the default sampler: a third of random's time or less);
- whether its final front weakly dominates the uniform-scaling front (every uniform width at the
  chip's default bits, plus the teacher at int8, trained at the same epochs: the anchor trials);
- throughput: trials per minute, trained trials per minute.

``--promotion`` measures the default pipeline instead (default sampler, anchors, promotion
rungs): per seed the front (size, latency spread, accuracy range, rung epochs) and whether it
weakly dominates the uniform front trained at the top rung's epochs.

The latency budget is the embedded default's (halfway between the cheapest configuration of the
space and the teacher at int8), so it binds on any model.

``tpe@N`` is the default TPE with ``n_startup_trials=N`` (Optuna counts every completed trial, the
enqueued anchors included).

CPU, digits default (3 seeds x 4 samplers x 40 trained trials, results in bench/RESULTS.md):
    python bench/bench_search_efficiency.py --seeds 0 1 2 --trials 40 \
        --samplers tpe tpe@8 random random-plain --json runs/bench-eff.json
    python bench/bench_search_efficiency.py --promotion --seeds 0 1 2 --json runs/bench-prom.json

GPU, CIFAR-10 ResNet-18 (small stem), the issue-11 comparison: a teacher from
`autocompress train --model resnet18 --dataset cifar10 --small-input --out T.pt`, the
headline's 50 % latency budget, equal wall time per method (uniform scaling is the anchor
trials of the default run, at the same fidelity):
    python bench/bench_search_efficiency.py --model resnet18 --dataset cifar10 \
        --chip rockchip/rv1126 --teacher T.pt --latency-ms 50% --device cuda \
        --trials 1000 --seconds-per-sampler 110 --seeds 0 --samplers tpe random random-plain

GPU, with a teacher trained in the run:
    python bench/bench_search_efficiency.py --model resnet18 --dataset cifar10 \
        --chip rockchip/rk3588 --trials 30 --epochs 0.5 --teacher-epochs 15 --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OBJECTIVES = ["accuracy", "latency_ms"]


def hypervolume_curve(run_dir: Path) -> dict[str, Any]:
    """(seconds, trained trials, hypervolume) after each finished search trial, plus throughput.

    Uses the accuracy of each trial's first rung (the search's own fidelity).
    """
    import optuna

    from autocompress.core.workspace import RunDirectory

    run = RunDirectory(run_dir)
    config = run.read_run_config()
    chip, limit = config.chip, float(config.budget.latency_ms)
    records = {r.number: r for r in run.read_trials()}
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    finished = [t for t in study.trials if t.datetime_complete is not None and t.number in records]
    start = min(t.datetime_start for t in finished)
    finished.sort(key=lambda t: t.datetime_complete)
    points: list[dict[str, float]] = []
    curve = []
    trained = 0
    for trial in finished:
        record = records[trial.number]
        if record.state == "complete":
            trained += 1
            if record.feasible:
                first = record.rungs[0]["accuracy"] if record.rungs else record.metrics["accuracy"]
                points.append({**record.costs[chip], "accuracy": float(first)})
        volume = hypervolume_of(points, limit)
        curve.append(((trial.datetime_complete - start).total_seconds(), trained, volume))
    total_s = curve[-1][0] if curve else 0.0
    return {
        "curve": curve,
        "final_hv": curve[-1][2] if curve else 0.0,
        "seconds": total_s,
        "trials": len(finished),
        "trained": trained,
        "trials_per_min": 60 * len(finished) / total_s if total_s else 0.0,
        "trained_per_min": 60 * trained / total_s if total_s else 0.0,
        "latency_budget_ms": limit,
        "front": front_points(run_dir),
    }


def hypervolume_of(points: list[dict[str, float]], latency_budget_ms: float) -> float:
    """Hypervolume of (accuracy up, latency_ms down), reference (0, the latency budget)."""
    from autocompress.core.pareto import hypervolume

    return hypervolume(points, OBJECTIVES, {"accuracy": 0.0, "latency_ms": latency_budget_ms})


def front_points(run_dir: Path) -> list[dict[str, float]]:
    """The run's feasible front on the main chip: accuracy, latency_ms, epochs, trial."""
    from autocompress.core.workspace import RunDirectory
    from autocompress.search.front import compute_fronts

    run = RunDirectory(run_dir)
    config = run.read_run_config()
    chip = config.chip
    numbers = set(compute_fronts(run, config)["fronts"][chip])
    out = []
    for record in run.read_trials():
        if record.number in numbers:
            out.append(
                {
                    "trial": record.number,
                    "accuracy": float(record.metrics["accuracy"]),
                    "latency_ms": float(record.costs[chip]["latency_ms"]),
                    "epochs": max((float(r.get("epochs", 0)) for r in record.rungs), default=0.0),
                }
            )
    return sorted(out, key=lambda p: p["latency_ms"])


def uniform_points(run_dir: Path) -> list[dict[str, float]]:
    """Feasible trained anchor trials of a run (uniform scaling at the run's first rung)."""
    import optuna

    from autocompress.core.pareto import pareto_front
    from autocompress.core.workspace import RunDirectory
    from autocompress.search.anchors import ANCHOR_ATTR

    run = RunDirectory(run_dir)
    config = run.read_run_config()
    chip = config.chip
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    anchors = {t.number for t in study.trials if t.user_attrs.get(ANCHOR_ATTR)}
    points = []
    for record in run.read_trials():
        if record.number in anchors and record.state == "complete" and record.feasible:
            accuracy = record.rungs[0]["accuracy"] if record.rungs else record.metrics["accuracy"]
            points.append(
                {"accuracy": float(accuracy), "latency_ms": float(record.costs[chip]["latency_ms"])}
            )
    return [points[i] for i in pareto_front(points, OBJECTIVES)]


def dominated_count(front: list[dict[str, float]], uniform: list[dict[str, float]]) -> int:
    """Uniform points weakly dominated by (or equal to) some front point."""
    return sum(
        1
        for u in uniform
        if any(
            f["accuracy"] >= u["accuracy"] - 1e-9 and f["latency_ms"] <= u["latency_ms"] + 1e-12
            for f in front
        )
    )


def reach(curve: list, target: float) -> tuple[float, int] | None:
    """(seconds, trained trials) until the curve first reaches ``target`` (None: never)."""
    for seconds, trained, volume in curve:
        if volume >= target - 1e-12:
            return seconds, trained
    return None


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _device(args: argparse.Namespace) -> str:
    import torch

    if torch.cuda.is_available() and args.device != "cpu":
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def _search(args: argparse.Namespace, run_dir: Path, **overrides: Any) -> float:
    from autocompress.search.api import search

    options: dict[str, Any] = {
        "model": args.model,
        "dataset": args.dataset,
        "chip": args.chip,
        "space": args.space,
        "trials": args.trials,
        "epochs": args.epochs,
        "teacher_epochs": args.teacher_epochs,
        "device": args.device,
        "data_limit": args.limit,
        "out": run_dir,
        "timeout_s": args.seconds_per_sampler,
        "embedded_default": args.latency_ms is None,
    }
    if args.latency_ms is not None:
        options["latency_ms"] = args.latency_ms
    if args.teacher:
        options["teacher"] = args.teacher
    options.update(overrides)
    started = time.perf_counter()
    search(**options)
    return time.perf_counter() - started


@contextlib.contextmanager
def tpe_startup(trials: int | None) -> Iterator[None]:
    """``tpe@N``: the default TPE with ``n_startup_trials=N`` (completed trials, the anchors
    included, before TPE models anything) for the runs inside; None: as shipped."""
    from autocompress.search import samplers

    if trials is None:
        yield
        return
    shipped = samplers.SAMPLERS["tpe"]

    def factory(seed: int | None, kwargs: dict) -> Any:
        import optuna

        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, constant_liar=True, n_startup_trials=trials, **kwargs
        )

    samplers.SAMPLERS["tpe"] = (shipped[0], factory, shipped[2])
    try:
        yield
    finally:
        samplers.SAMPLERS["tpe"] = shipped


def _save(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), **payload}, indent=1))


def compare_samplers(args: argparse.Namespace) -> None:
    out = Path(args.out)
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in args.samplers}
    for seed in args.seeds:
        for name in args.samplers:
            sampler, plain = (
                (name[: -len("-plain")], True) if name.endswith("-plain") else (name, False)
            )
            sampler, _, startup = sampler.partition("@")
            run_dir = out / f"{name.replace('@', '-s')}-seed{seed}-{int(time.time())}"
            with tpe_startup(int(startup) if startup else None):
                wall = _search(
                    args, run_dir, sampler=sampler, seed=seed, rungs=[1.0], anchors=not plain
                )
            measured = hypervolume_curve(run_dir)
            measured.update(seed=seed, wall_s=wall, run_dir=str(run_dir))
            if not plain:
                measured["uniform"] = uniform_points(run_dir)
                measured["uniform_hv"] = hypervolume_of(
                    measured["uniform"], measured["latency_budget_ms"]
                )
            measured["best_accuracy"] = max((p["accuracy"] for p in measured["front"]), default=0.0)
            results[name].append(measured)
            _save(args, {"runs": results})  # after every run: a cut-off benchmark keeps its data
            print(
                f"seed {seed} {name:12s} final HV {measured['final_hv']:.6f}  "
                f"{measured['trials']} trials ({measured['trained']} trained) in "
                f"{measured['seconds']:.1f} s  front {len(measured['front'])}",
                flush=True,
            )
    baseline_name = "random-plain" if "random-plain" in results else "random"
    print(
        f"\n{args.model or 'fc_cnn'} on {args.dataset or 'digits'}, chip {args.chip}, "
        f"{args.trials} trained trials, "
        f"seeds {args.seeds}, device {_device(args)}, commit {_commit()}; "
        f"baseline {baseline_name}"
    )
    print(
        "| sampler | final HV per seed (mean) | reached baseline's final HV: share of its time, "
        "per seed (median) | trained trials to reach it, per seed | front ⪰ uniform, per seed "
        "| trials/min | trained/min |"
    )
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for name in args.samplers:
        shares, trained_to, dominance = [], [], []
        for index, measured in enumerate(results[name]):
            baseline = results[baseline_name][index]
            reached = reach(measured["curve"], baseline["final_hv"])
            if reached is None:
                shares.append(None)
                trained_to.append(None)
            else:
                shares.append(reached[0] / baseline["seconds"] if baseline["seconds"] else None)
                trained_to.append(reached[1])
            uniform = next(
                (
                    m.get("uniform")
                    for m in (results[n][index] for n in args.samplers)
                    if m.get("uniform")
                ),
                [],
            )
            dominance.append(f"{dominated_count(measured['front'], uniform)}/{len(uniform)}")
        finals = [m["final_hv"] for m in results[name]]
        known = [x for x in shares if x is not None]
        median_share = statistics.median([x if x is not None else float("inf") for x in shares])
        print(
            f"| {name} | {' / '.join(f'{v:.5f}' for v in finals)} ({statistics.mean(finals):.5f}) "
            f"| {' / '.join('never' if x is None else f'{x:.2f}' for x in shares)} "
            f"({'never' if median_share == float('inf') else f'{median_share:.2f}'}) "
            f"| {' / '.join('-' if x is None else str(x) for x in trained_to)} "
            f"| {' / '.join(dominance)} "
            f"| {statistics.mean(m['trials_per_min'] for m in results[name]):.1f} "
            f"| {statistics.mean(m['trained_per_min'] for m in results[name]):.1f} |"
        )
        summary[name] = {
            "final_hv": finals,
            "share_of_baseline_time": shares,
            "trained_to_reach": trained_to,
            "reached": len(known),
            "front_dominates_uniform": dominance,
        }
    for name in args.samplers:
        for measured in results[name]:
            if "uniform_hv" in measured:
                print(
                    f"seed {measured['seed']}: uniform scaling (the anchors of the {name} run, "
                    f"same fidelity): HV {measured['uniform_hv']:.5f}, best accuracy "
                    f"{max((p['accuracy'] for p in measured['uniform']), default=0.0):.4f}; "
                    f"{name}: best feasible accuracy {measured['best_accuracy']:.4f}"
                )
    _save(args, {"device": _device(args), "commit": _commit(), "summary": summary, "runs": results})


def measure_promotion(args: argparse.Namespace) -> None:
    """The default pipeline per seed, against uniform scaling at the top rung's epochs."""
    from autocompress.core.workspace import RunDirectory

    out = Path(args.out)
    rows = []
    for seed in args.seeds:
        run_dir = out / f"default-seed{seed}-{int(time.time())}"
        wall = _search(args, run_dir, seed=seed, trials=args.trials, epochs=args.epochs)
        config = RunDirectory(run_dir).read_run_config()
        factors = config.promotion.rungs
        top = float(config.finetune.epochs) * float(factors[-1])
        front = front_points(run_dir)
        uniform_dir = out / f"uniform-seed{seed}-{int(time.time())}"
        _search(
            args,
            uniform_dir,
            seed=seed,
            trials=max(1, _feasible_anchor_count(run_dir)),
            epochs=top,
            rungs=[1.0],
            sampler="random",
        )
        uniform = uniform_points(uniform_dir)
        latencies = [p["latency_ms"] for p in front]
        accuracies = [p["accuracy"] for p in front]
        row = {
            "seed": seed,
            "wall_s": wall,
            "front": front,
            "uniform_at_top": uniform,
            "top_epochs": top,
            "spread": max(latencies) / min(latencies) if latencies else 0.0,
            "accuracy_range": [min(accuracies), max(accuracies)] if accuracies else [],
            "dominates_uniform": f"{dominated_count(front, uniform)}/{len(uniform)}",
        }
        rows.append(row)
        _save(args, {"promotion_runs": rows})
        print(
            f"seed {seed}: {wall:.0f} s, front {len(front)} models, latency "
            f"{min(latencies):.4f}-{max(latencies):.4f} ms ({row['spread']:.2f}x), accuracy "
            f"{min(accuracies):.3f}-{max(accuracies):.3f}, epochs "
            f"{sorted({p['epochs'] for p in front})}, front weakly dominates uniform "
            f"({top:g} epochs): {row['dominates_uniform']}",
            flush=True,
        )
    _save(args, {"device": _device(args), "commit": _commit(), "promotion_runs": rows})


def _feasible_anchor_count(run_dir: Path) -> int:
    import optuna

    from autocompress.core.workspace import RunDirectory
    from autocompress.search.anchors import ANCHOR_ATTR

    run = RunDirectory(run_dir)
    study = optuna.load_study(study_name="autocompress", storage=run.storage_url)
    anchors = {t.number for t in study.trials if t.user_attrs.get(ANCHOR_ATTR)}
    return sum(1 for r in run.read_trials() if r.number in anchors and r.state == "complete")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samplers", nargs="+", default=["tpe", "gp", "nsga2", "random", "random-plain"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=30, help="trained trials per run")
    parser.add_argument("--model", default=None, help="default: the embedded default's")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--chip", default="rockchip/rv1126")
    parser.add_argument("--space", default="default")
    parser.add_argument("--epochs", type=float, default=None, help="fine-tune epochs per trial")
    parser.add_argument("--teacher-epochs", type=int, default=None)
    parser.add_argument(
        "--teacher", default=None, help="a trained teacher checkpoint (autocompress train --out)"
    )
    parser.add_argument(
        "--latency-ms",
        default=None,
        help="latency budget as the CLI takes it (1.9, 50%%); default: the embedded default's "
        "derived budget",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="images per split")
    parser.add_argument(
        "--seconds-per-sampler",
        type=float,
        default=None,
        help="equal wall-clock budget per sampler",
    )
    parser.add_argument("--promotion", action="store_true", help="measure the default pipeline")
    parser.add_argument("--out", default="runs/bench-efficiency")
    parser.add_argument("--json", default=None, help="write all numbers (curves included) here")
    args = parser.parse_args()
    if args.promotion:
        measure_promotion(args)
    else:
        compare_samplers(args)


if __name__ == "__main__":
    main()
