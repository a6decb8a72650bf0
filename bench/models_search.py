"""`autocompress search` on every torchvision classifier, through the CLI as a user runs it.

    python bench/models_search.py --jsonl runs/models-search.jsonl             # every model
    python bench/models_search.py --models resnet18,googlenet --jsonl -       # a few
    python bench/models_search.py --jsonl runs/models-search.jsonl --update-docs docs/models.md

The coverage table (bench/models_coverage.py, docs/models.md) probes each stage a trial
takes inside one process; this runs the whole command instead. Per model, in its own
process with a time limit:

    autocompress search --model NAME --dataset imagefolder:DIR --input-size S
        --trials 1 --epochs 1 --teacher-epochs 1 --latency-ms 1000% --memory-kb 1000%
        --power-mw 1000% --device cpu --no-progress --json --out RUN

on a small image folder cut from ../shared/datasets (CIFAR-10 test JPEGs, ``--per-class``
images of each class, one folder that the search splits itself), at the input size of the
model's row in docs/models.md (the smallest it runs among 32, 64, 96 and 224 pixels). The
teacher is trained in the run (one epoch: the point is that the pipeline completes, not
its accuracy); the budgets are wide so that the trial is trained rather than ruled out;
everything else is the default (anchors, budget-filling anchors, the TPE sampler).

A row is ``completed`` when the command exits 0 (trained, or failed with its reason: the
one-epoch teacher on 72 training images is often at chance, and so is its student, which
the divergence check then fails); ``clean error`` when it exits
non-zero with a message and no traceback (the issue's "clean message or result"); and
``traceback`` / ``timed out`` otherwise. ``--update-docs`` adds the ``search`` column to
docs/models.md from the JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def image_folder(root: Path, per_class: int) -> Path:
    """``per_class`` test JPEGs of each CIFAR-10 class under ``root``/images/<class>/."""
    from autocompress.core.data import CIFAR10_ARCHIVE, _candidate_dirs

    # where `--dataset cifar10` looks: $AUTOCOMPRESS_DATA, .data, ../shared/datasets
    archive = next(
        (d / CIFAR10_ARCHIVE for d in _candidate_dirs(None) if (d / CIFAR10_ARCHIVE).is_file()),
        None,
    )
    if archive is None:
        raise SystemExit(f"{CIFAR10_ARCHIVE} not found (set AUTOCOMPRESS_DATA to its folder)")
    target = root / "images"
    taken: dict[str, int] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 4 or parts[-3] != "test":
                continue
            label = parts[-2]
            if taken.get(label, 0) >= per_class:
                continue
            out = target / label / parts[-1]
            out.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            out.write_bytes(source.read())
            taken[label] = taken.get(label, 0) + 1
            if len(taken) == 10 and all(v >= per_class for v in taken.values()):
                break
    return target


def input_sizes(models_md: Path) -> dict[str, int]:
    """Model -> input size of its row in docs/models.md."""
    sizes = {}
    for line in models_md.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 2 and cells[1].isdigit():
            sizes[cells[0]] = int(cells[1])
    return sizes


def search_one(
    name: str, size: int, folder: Path, work: Path, timeout_s: float, threads: int, device: str
) -> dict:
    out = work / name
    args = [
        "search", "--model", name, "--dataset", f"imagefolder:{folder}", "--input-size",
        str(size), "--trials", "1", "--epochs", "1", "--teacher-epochs", "1",
        "--latency-ms", "1000%", "--memory-kb", "1000%", "--power-mw", "1000%",
        "--device", device, "--no-progress", "--json", "--out", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    row: dict = {"model": name, "input": size, "device": device, "cores": threads}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "autocompress", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired:
        row.update(search=f"timed out after {timeout_s:.0f} s", seconds=round(timeout_s, 1))
        return row
    row["seconds"] = round(time.perf_counter() - started, 1)
    row["returncode"] = done.returncode
    if done.returncode == 0:
        try:
            summary = json.loads(done.stdout)
            counts = summary.get("counts", {})
            front = sum(len(v) for v in summary.get("fronts", {}).values())
            failed = counts.get("failed", 0)
            row["search"] = (
                f"completed ({counts.get('complete', 0)} trained"
                + (f", {failed} failed with a reason" if failed else "")
                + f", front {front}; teacher val "
                + f"{summary.get('teacher', {}).get('val_accuracy', 0):.2f})"
            )
        except ValueError:
            row["search"] = "completed (no JSON summary)"
        return row
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    if "Traceback" in done.stderr:
        row["search"] = f"traceback (exit {done.returncode}): {lines[-1][:160] if lines else ''}"
    else:
        error = next((line for line in lines if line.lstrip().startswith("error")), "")
        row["search"] = f"clean error (exit {done.returncode}): {(error or lines[-1])[:160]}"
    row["stderr_tail"] = "\n".join(lines[-8:])
    return row


def update_docs(models_md: Path, rows: dict[str, dict], how: str) -> None:
    """Add (or refresh) the ``search`` column of the table in ``models_md``."""
    text = models_md.read_text().splitlines()
    out = []
    for line in text:
        cells = line.strip().strip("|").split("|") if line.startswith("|") else None
        if cells and cells[0].strip() == "model":
            if cells[-1].strip() != "search":
                cells.append(" search ")
            out.append("|" + "|".join(cells) + "|")
        elif cells and set(line.replace("|", "").strip()) == {"-"}:
            count = line.count("|") - 1
            header = out[-1].count("|") - 1
            out.append("|" + "---|" * max(count, header))
        elif cells and len(cells) > 2 and (cells[1].strip().isdigit() or cells[1].strip() == "–"):
            name = cells[0].strip()
            header = out[-2].count("|") - 1 if len(out) > 1 else len(cells)
            old = list(cells)
            if len(cells) >= header:  # a refresh: replace the last cell
                cells = cells[: header - 1]
            kept_cell = old[-1].strip() if len(old) >= header else "not run yet"
            row = rows.get(name)
            if row is None:  # not in this JSONL: the table's cell stays
                cell = kept_cell
            else:
                cell = row["search"].replace("|", "\\|")
                if row.get("device", "cpu") != "cpu":
                    cell += f" [{row['device']}]"
            out.append("|" + "|".join(cells) + f"| {cell} |")
        else:
            out.append(line)
    marker = "- **search**:"
    note = (
        f"{marker} {how}: completed (exit 0: the trial trained, or failed with its reason; "
        "a 1-epoch teacher on 72 training images is often at chance, and the divergence check "
        "then fails its student), clean error (a message, no traceback) or a traceback / "
        "time-out."
    )
    kept = [line for line in out if not line.startswith(marker)]
    at = next((i for i, line in enumerate(kept) if line.startswith("- **timed out**")), None)
    if at is not None:
        kept.insert(at, note)
    table = [line for line in kept if line.startswith("|")][2:]
    run = sum(1 for line in table if not line.rstrip().endswith("| not run yet |"))
    coverage = (
        f"all {run} models run"
        if run == len(table)
        else f"{run} of {len(table)} models run, cheapest first, the others `not run yet`"
    )
    kept = [line.replace("{coverage}", coverage) for line in kept]
    models_md.write_text("\n".join(kept) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every classifier)")
    parser.add_argument("--jsonl", default="-", help="one JSON line per model ('-': stdout)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per search")
    parser.add_argument("--device", default="cpu", help="the searches' --device (cpu, cuda)")
    parser.add_argument("--per-class", type=int, default=12, help="images of each class")
    parser.add_argument("--work", default=None, help="folder for the image folder and the runs")
    parser.add_argument("--models-md", default="docs/models.md", help="input sizes from here")
    parser.add_argument("--skip-done", action="store_true", help="skip models in --jsonl")
    parser.add_argument(
        "--update-docs", default=None, help="add the search column to this docs/models.md"
    )
    args = parser.parse_args()
    sizes = input_sizes(Path(args.models_md))
    if args.update_docs:
        rows: dict[str, dict] = {}
        for line in Path(args.jsonl).read_text().splitlines():
            row = json.loads(line)
            rows[row["model"]] = row
        how = (
            "`python bench/models_search.py` (the whole `autocompress search` command on a "
            "120-image CIFAR-10 folder at the row's input size: 1 trained trial of 1 epoch, a "
            "1-epoch teacher trained in the run, budgets of 1000 %, otherwise the defaults; "
            f"one model at a time on {len(os.sched_getaffinity(0))} CPU cores, rows marked "
            "[cuda] with `--device cuda` on a GPU host, four at a time (bench/RESULTS.md says "
            "which); {coverage})"
        )
        update_docs(Path(args.update_docs), rows, how)
        return
    from autocompress.core.models import torchvision_model_names

    names = args.models.split(",") if args.models else torchvision_model_names()
    done: set[str] = set()
    if args.skip_done and args.jsonl != "-" and Path(args.jsonl).is_file():
        done = {json.loads(line)["model"] for line in Path(args.jsonl).read_text().splitlines()}
    work = Path(args.work or tempfile.mkdtemp(prefix="models-search-"))
    folder = image_folder(work, args.per_class)
    threads = args.threads or len(os.sched_getaffinity(0))
    for name in names:
        if name in done:
            continue
        row = search_one(
            name, sizes.get(name, 224), folder, work / "runs", args.timeout, threads, args.device
        )
        text = json.dumps(row)
        if args.jsonl == "-":
            print(text, flush=True)
        else:
            with open(args.jsonl, "a") as handle:
                handle.write(text + "\n")
            print(f"{name}: {row['search']} ({row.get('seconds')} s)", flush=True)


if __name__ == "__main__":
    main()
