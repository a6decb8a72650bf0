"""Issue 10 headline, through the CLI as a user runs it: search, then recover the pick.

Steps (each one an ``autocompress`` command in a subprocess; the commands are printed):

1. ``autocompress train`` the teacher (ResNet-18, small-input stem, CIFAR-10), unless
   ``--teacher`` gives one;
2. ``autocompress search`` with the default settings on rockchip/rv1126 with a latency
   budget of 50 % of the teacher's int8 latency, ``--device cuda``, ``--timeout``;
3. ``autocompress finetune RUN --pick "max accuracy"`` (recovery, ``--recover-epochs``);
4. the uniform-width int8 baseline at the same budget: a one-trial search over a space
   with width 0.5 and every layer int8, then the same recovery epochs;
5. the 50 %-channel W4A8 student (4-bit weights, 8-bit first/last layer, 8-bit
   activations): a one-trial search with 5 fine-tune epochs, then recovery.

Prints a table (test accuracy, gap to the teacher, latency, seconds) plus the search's
throughput (trained trials per minute, median fine-tune seconds per epoch from
``autocompress report --json``), and writes everything to ``--json``.

    python bench/bench_recovery_gpu.py --work .bench-recovery            # H100/H200, ~25 min
    python bench/bench_recovery_gpu.py --work .bench-recovery --teacher .data/r18.pt
    python bench/bench_recovery_gpu.py --quick --work /tmp/bench-recovery  # CPU smoke run

``--quick`` runs the same steps on the digits with small_cnn on the CPU in a few
minutes (latency budget 95 %: the tiny CNN is launch-bound): it checks the script,
not the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

UNIFORM_SPACE = """\
name: uniform-int8
description: Uniform width, every layer int8 (the baseline of issue 10).
width_multiplier: {{choices: [{width}]}}
kd_temperature: {{choices: [4.0]}}
kd_alpha: {{choices: [0.9]}}
layers:
  - match: [first, last]
    protect: true
    weight_bits: 8
    activation_bits: 8
  - match: "*"
    prune_ratio: 0.0
    weight_bits: {bits}
    activation_bits: 8
    sparsity: none
"""


def autocompress(args: list[str], log: list[dict], *, parse_json: bool = True) -> dict:
    """Run ``python -m autocompress ARGS``; return its JSON output (stdout) and the seconds."""
    command = [sys.executable, "-m", "autocompress", *args]
    print("$ autocompress " + " ".join(_quote(a) for a in args), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log.append({"command": args, "seconds": seconds, "returncode": done.returncode})
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"command failed ({done.returncode}): autocompress {' '.join(args)}")
    print(f"  ({seconds:.1f} s)", flush=True)
    out = json.loads(done.stdout) if parse_json and done.stdout.strip() else {}
    return {"output": out, "seconds": seconds}


def _on_chip(common: list[str], chip: str) -> list[str]:
    """The common search arguments for another chip: its default budgets, not rv1126's
    latency share (a W4A8 row measures accuracy, not the rv1126 trade-off)."""
    if chip == "rockchip/rv1126":
        return common
    out, skip = [], False
    for arg in common:
        if skip:
            skip = False
            continue
        if arg == "--latency-ms":
            skip = True
            continue
        out.append(chip if arg == "rockchip/rv1126" else arg)
    return out


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or "%" in arg) else arg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(".bench-recovery"))
    parser.add_argument("--teacher", type=Path, help="Teacher checkpoint (skip training).")
    parser.add_argument("--teacher-epochs", type=int, default=60)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--timeout", type=float, default=540.0, help="Search seconds.")
    parser.add_argument("--search-epochs", type=float, help="Fine-tune epochs per trial.")
    parser.add_argument("--recover-epochs", type=float, default=30)
    parser.add_argument("--w4a8-epochs", type=float, default=5)
    parser.add_argument("--uniform-width", type=float, default=0.5)
    parser.add_argument(
        "--w4a8-chip", default="rockchip/rk3588", help="Chip of the W4A8 row (runs 4-bit)."
    )
    parser.add_argument(
        "--baselines", default="uniform,w4a8", help="Which baselines: uniform, w4a8 or both."
    )
    parser.add_argument(
        "--latency", default=None, help="Latency budget (default 50%%; 95%% with --quick)."
    )
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--quick", action="store_true", help="Digits on the CPU, minutes.")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    parser.add_argument(
        "--part",
        choices=["all", "search", "baselines"],
        default="all",
        help="Run only the search + its recovery, or only the two baselines (a device call "
        "of limited length runs them one after the other; the table shows what ran).",
    )
    args = parser.parse_args()

    if args.quick:
        model, dataset, device = "small_cnn", "digits", "cpu"
        teacher_args = ["--epochs", "5"]
        search_extra = ["--trials", "4", "--epochs", "0.5"]
        recover_epochs, w4a8_epochs, timeout = 2.0, 1.0, None
    else:
        model, dataset, device = "resnet18", "cifar10", args.device
        teacher_args = ["--epochs", str(args.teacher_epochs), "--batch-size", "256"]
        teacher_args += ["--lr", "0.1", "--small-input"]
        search_extra = ["--epochs", str(args.search_epochs)] if args.search_epochs else []
        recover_epochs, w4a8_epochs, timeout = args.recover_epochs, args.w4a8_epochs, args.timeout
    data_root = ["--data-root", str(args.data_root)] if args.data_root else []
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    started = time.perf_counter()

    teacher = args.teacher or work / f"teacher-{model}-{dataset}.pt"
    if args.teacher is None and not teacher.is_file():
        trained = autocompress(
            [
                "train",
                "--model",
                model,
                "--dataset",
                dataset,
                *teacher_args,
                "--device",
                device,
                "--out",
                str(teacher),
                "--json",
                *data_root,
            ],
            log,
        )
        teacher_info = trained["output"]
    else:
        teacher_info = {"checkpoint": str(teacher)}
    common = ["--model", model, "--dataset", dataset, "--chip", "rockchip/rv1126"]
    latency = args.latency or ("95%" if args.quick else "50%")
    common += ["--teacher", str(teacher), "--latency-ms", latency, "--device", device, *data_root]
    stamp = time.strftime("%Y%m%d-%H%M%S")

    # 2-3: the search with default settings, then recovery of its best feasible model
    run_search = args.part in ("all", "search")
    run_baselines = args.part in ("all", "baselines")
    report = recovered = export = search = None
    if run_search:
        run = work / f"search-{stamp}"
        search_args = ["search", *common, "--out", str(run), "--json", "--no-progress"]
        search_args += search_extra + (["--timeout", str(timeout)] if timeout else [])
        search = autocompress(search_args, log)
        report = autocompress(["report", str(run), "--json"], log)["output"]
        recovered = autocompress(
            [
                "finetune",
                str(run),
                "--pick",
                "max accuracy",
                "--epochs",
                str(recover_epochs),
                "--device",
                device,
                "--json",
            ],
            log,
        )
        export = autocompress(
            ["export", str(run), "--trial", str(recovered["output"]["trial"])],
            log,
            parse_json=False,
        )

    # 4-5: baselines as one-trial searches over fixed spaces, recovered the same way
    def baseline(
        name: str, width: float, bits: int, epochs: float | None, chip: str = "rockchip/rv1126"
    ) -> dict:
        space = work / f"space-{name}.yaml"
        space.write_text(UNIFORM_SPACE.format(width=width, bits=bits))
        out = work / f"{name}-{stamp}"
        extra = ["--epochs", str(epochs)] if epochs else search_extra[-2:] if args.quick else []
        one = autocompress(
            [
                "search",
                *_on_chip(common, chip),
                "--space",
                str(space),
                "--trials",
                "1",
                "--rungs",
                "1",  # the baseline's epochs as given: a lone front trial would be promoted
                "--out",
                str(out),
                "--json",
                "--no-progress",
                *extra,
            ],
            log,
        )
        rows = autocompress(["report", str(out), "--json"], log)["output"]
        trial = rows["trials"][0]
        result = {"search": one, "trial": trial, "run": str(out)}
        if trial["state"] == "complete" and trial["feasible"]:
            result["recovered"] = autocompress(
                [
                    "finetune",
                    str(out),
                    "--trial",
                    str(trial["trial"]),
                    "--epochs",
                    str(recover_epochs),
                    "--device",
                    device,
                    "--json",
                ],
                log,
            )["output"]
        return result

    uniform = w4a8 = None
    if run_baselines:
        wanted = set(args.baselines.split(","))
        if "uniform" in wanted:
            uniform = baseline("uniform-int8", args.uniform_width, 8, None)
        # rv1126 deploys no 4-bit weights (the space would fall back to int8): the W4A8
        # student is measured on a chip that runs them.
        if "w4a8" in wanted:
            w4a8 = baseline("w4a8-50pct", 0.5, 4, w4a8_epochs, chip=args.w4a8_chip)
    total = time.perf_counter() - started
    if report is None:  # baselines only: the teacher's figures come from a baseline's run
        first = uniform or w4a8
        report = autocompress(["report", first["run"], "--json"], log)["output"]

    teacher_test = report["teacher"].get("test_accuracy")

    def row(name, proxy, rec, latency, seconds):
        gap = (
            f"{100 * (teacher_test - rec):+.2f}" if rec is not None and teacher_test else "–"
        )  # points below the teacher
        pct = lambda v: "–" if v is None else f"{100 * v:.2f}"  # noqa: E731
        lat = "–" if latency is None else f"{latency:.3g}"
        print(f"| {name} | {pct(proxy)} | {pct(rec)} | {gap} | {lat} | {seconds:.0f} |")

    print()
    print(f"## issue 10 headline ({dataset}, {model}, rv1126, latency <= {latency} of int8)")
    print(
        f"machine: {platform.node()} {platform.machine()}, device {device}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, part {args.part}"
    )
    print()
    print(
        "| model | proxy test % | recovered test % | teacher - recovered (pt) | "
        "latency ms (its chip) | seconds |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| teacher | {100 * (teacher_test or 0):.2f} | – | – | "
        f"{report['teacher'].get('latency_ms') or 0:.3g} | – |"
    )
    results: dict = {
        "dataset": dataset,
        "model": model,
        "device": device,
        "quick": args.quick,
        "part": args.part,
        "teacher": teacher_info | {"test_accuracy": teacher_test},
    }
    rec = None
    if run_search:
        counts = report["counts"]
        search_seconds = search["seconds"]
        throughput = report.get("finetune_throughput") or {}
        best = next(t for t in report["trials"] if t["trial"] == recovered["output"]["trial"])
        rec = recovered["output"]
        row(
            "searched best (pick max accuracy)",
            best.get("test_accuracy"),
            rec["test_accuracy"],
            best.get("latency_ms"),
            search_seconds + rec["seconds"],
        )
        per_minute = counts["complete"] / max(search_seconds / 60.0, 1e-9)
        results["search"] = {
            "seconds": search_seconds,
            "counts": counts,
            "throughput": throughput,
            "trained_per_minute": per_minute,
            "run": str(run),
        }
        results["searched_best"] = {"trial": best, "recovered": rec}
    if run_baselines:
        for name, base in (
            (f"uniform width {args.uniform_width:g} int8", uniform),
            (f"50 % channels W4A8 ({w4a8_epochs:g} ep, {args.w4a8_chip})", w4a8),
        ):
            if base is None:
                continue
            trial = base["trial"]
            rec_b = base.get("recovered") or {}
            row(
                name,
                trial.get("test_accuracy"),
                rec_b.get("test_accuracy"),
                trial.get("latency_ms"),
                base["search"]["seconds"] + rec_b.get("seconds", 0),
            )
        results["uniform_int8"] = uniform
        results["w4a8_50pct"] = w4a8
    print()
    if run_search:
        print(
            f"search: {counts['trials']} trials in {search_seconds:.0f} s ({counts['complete']} "
            f"trained, {counts['infeasible']} over budget, {counts['failed']} failed): "
            f"{per_minute:.1f} trained trials/min; median fine-tune "
            f"{throughput.get('median_s_per_epoch', float('nan')):.3g} s/epoch"
        )
        print(
            f"recovery: {rec['epochs']:g} epochs in {rec['seconds']:.0f} s "
            f"({rec['seconds_per_epoch']:.3g} s/epoch)"
        )
        print(f"export: {export['seconds']:.0f} s")
    if run_search and uniform is not None:
        beaten = (uniform.get("recovered") or {}).get("test_accuracy", 0) < rec["test_accuracy"]
        print(f"searched model beats the uniform int8 baseline: {beaten}")
    print(f"total {total / 60:.1f} min; commands: {len(log)}")
    results["total_seconds"] = total
    results["commands"] = log
    results["env"] = {"python": platform.python_version(), "cwd": os.getcwd()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
