"""Every torchvision classifier through cost -> prune -> quantize -> export, on the CPU.

    nice -n 10 python bench/models_coverage.py --out docs/models.md            # all models
    python bench/models_coverage.py --models resnet18,mobilenet_v2 --out -     # a few, to stdout
    python bench/models_coverage.py --jobs 5 --timeout 450 --total-timeout 450 --out docs/models.md

Each model runs in its own process (a time limit per model; a crash or hang of one
model does not stop the table). ``--jobs N`` runs N of them at once, each with
``--threads`` torch threads (default: the machine's cores divided by N), the longest
first (by the seconds in the table --out replaces, else by size); the table keeps the
model order. ``--total-timeout`` bounds the whole run: a model not started by then gets
that status, and no model runs past it.

Per model, at the smallest input it accepts among 32, 64, 96 and 224 pixels (ViT and
MaxViT need 224; models that pool adaptively to more than 1x1, AlexNet and VGG, get
224 so their ONNX export is possible):

- cost: layers extracted and costed on rockchip/rv1126 (MACs in millions);
- prune: a student at width 0.5, 8-bit, built with physical pruning; the status says
  how many channel groups shrank and how many stayed at full width;
- quantize: the weights that run fake-quantized (every Conv2d/Linear weight, including
  the attention projections), as "quantized / all";
- export: ONNX with Q/DQ written, checked by onnx.checker and compared with PyTorch on
  random images by onnxruntime (the layer-by-layer check; top-1 agreement).

The table (markdown) is written to --out; the per-model JSON lines to --jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

SIZES = (32, 64, 96, 224)
CHIP = "rockchip/rv1126"


EXPORT_IMAGES = 16
EXPORT_MACS_M = 20_000.0
"""Above this many MACs (millions) per image the export check gets fewer random images
(onnxruntime runs each about three times on one thread, PyTorch about five times)."""


def export_images(macs_m: float | None) -> int:
    """Random images of the export check: 16, fewer for the largest models (at least 2)."""
    if not macs_m:
        return EXPORT_IMAGES
    return max(2, min(EXPORT_IMAGES, int(EXPORT_IMAGES * EXPORT_MACS_M / macs_m)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def probe(name: str, threads: int = 1) -> dict:
    """Run every stage on one model with ``threads`` torch threads; never raises (the
    result says what failed)."""
    import tempfile

    import torch

    from autocompress.compress.slim import channel_groups
    from autocompress.compress.student import build_student, calibrate, quantizable_layers
    from autocompress.core.models import ModelSpec
    from autocompress.core.trial_config import TrialConfig
    from autocompress.export.onnx_model import write_onnx
    from autocompress.export.verify import check_onnx_file, compare_with_torch
    from autocompress.hardware.estimate import estimate_costs
    from autocompress.hardware.extract import extract_layers
    from autocompress.hardware.plugins import get_chip

    torch.set_num_threads(max(1, int(threads)))
    out: dict = {"model": name}
    chip = get_chip(CHIP)
    spec = ModelSpec(name, num_classes=10)
    started = time.perf_counter()
    try:
        model = spec.build().eval()
    except Exception as exc:
        out["build"] = _first_line(exc)
        return out
    size = None
    pooled = [
        m.output_size
        for m in model.modules()
        if isinstance(m, (torch.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveMaxPool2d))
    ]
    # ONNX exports adaptive pooling only to a factor of its input (AlexNet's 6x6, VGG's 7x7)
    sizes = (224,) if any(o not in (1, (1, 1), None) for o in pooled) else SIZES
    for s in sizes:
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, s, s))
            size = s
            break
        except Exception:
            continue
    if size is None:
        out["build"] = "no input size of 32..224 runs"
        return out
    shape = (3, size, size)
    out["input"] = size
    out["params_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    # cost
    try:
        layers = extract_layers(model, shape)
        cost = estimate_costs(layers, [chip])[chip.chip_id]
        out["macs_m"] = round(sum(layer.macs for layer in layers) / 1e6, 1)
        out["latency_ms"] = round(float(cost.metrics()["latency_ms"]), 3)
        out["cost"] = "ok"
    except Exception as exc:
        out["cost"] = _first_line(exc)
    # prune
    student = None
    try:
        quantizable = quantizable_layers(model)
        config = TrialConfig(
            width_multiplier=0.5,
            weight_bits=dict.fromkeys(quantizable, 8),
            activation_bits=dict.fromkeys(quantizable, 8),
        )
        example = torch.zeros(1, *shape)
        groups = channel_groups(model, example)
        student = build_student(model, config, chip, shape)
        with torch.no_grad():
            logits = student(torch.randn(2, *shape))
        assert logits.shape == (2, 10), logits.shape
        slim_layers = {d.name: d.out_channels for d in extract_layers(student, shape)}
        full_layers = {d.name: d.out_channels for d in extract_layers(model, shape)}
        shrunk = sum(1 for k, v in slim_layers.items() if full_layers.get(k, v) > v)
        prunable = sum(1 for g in groups if g.prunable)
        out["prune"] = f"ok ({shrunk} of {len(full_layers)} layers narrower; {prunable} groups)"
    except Exception as exc:
        out["prune"] = _first_line(exc)
        out["prune_trace"] = traceback.format_exc()[-1500:]
    # quantize
    if student is not None:
        try:
            from autocompress.compress.quantize import quantized_layers

            quantized = dict(quantized_layers(student))
            ran: set[str] = set()
            handles = [
                module.register_forward_hook(lambda *_a, n=n: ran.add(n))
                for n, module in quantized.items()
            ]
            with torch.no_grad():
                student(torch.randn(1, *shape))
            for handle in handles:
                handle.remove()
            # weights read functionally: nn.MultiheadAttention's in_proj_weight (its out_proj
            # too) and Swin's qkv/proj (shifted_window_attention); aux heads never run
            from torchvision.models.swin_transformer import ShiftedWindowAttention

            functional = 0
            for module in student.modules():
                if isinstance(module, torch.nn.MultiheadAttention):
                    functional += 1 + int("out_proj" not in ran_names(module, quantized, ran))
                elif isinstance(module, ShiftedWindowAttention):
                    functional += 2
            teacher_ran: set[str] = set()
            handles = [
                m.register_forward_hook(lambda *_a, n=n: teacher_ran.add(n))
                for n, m in model.named_modules()
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
            ]
            with torch.no_grad():
                model(torch.randn(1, *shape))
            for handle in handles:
                handle.remove()
            total = len(teacher_ran) + functional
            # a routed window attention (compress.attention) quantizes its qkv/proj weights
            routed = sum(
                2
                for m in student.modules()
                if isinstance(m, ShiftedWindowAttention) and type(m).__name__.startswith("Routed")
            )
            out["quantized_layers"] = len(ran) + routed
            out["weight_layers"] = total
            out["quantize"] = f"{len(ran) + routed} / {total}"
        except Exception as exc:
            out["quantize"] = _first_line(exc)
        # export
        try:
            calibrate(student, torch.randn(8, *shape))
            count = export_images(out.get("macs_m"))
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                write_onnx(student, shape, path)  # over 2 GiB: with model.onnx.data
                check_onnx_file(path)
                check = compare_with_torch(
                    path, student, torch.randn(count, *shape), min_agreement=0.0
                )
            on = "" if count == EXPORT_IMAGES else f" on {count} images"
            out["export"] = f"ok (agreement {check.top1_agreement:.0%}{on})"
            out["export_images"] = count
        except Exception as exc:
            out["export"] = _first_line(exc)
        # train: one distillation step in training mode, as a trial's fine-tune runs it
        # (recorded in the JSON lines; not yet a column of docs/models.md)
        try:
            from autocompress.compress.distill import kd_loss
            from autocompress.compress.model_output import main_logits

            images = torch.randn(2, *shape)
            with torch.no_grad():
                target = main_logits(model.eval()(images))
            student.train()
            loss = kd_loss(
                main_logits(student(images)),
                target,
                torch.tensor([0, 1]),
                temperature=4.0,
                alpha=0.9,
            )
            loss.backward()
            assert torch.isfinite(loss), float(loss)
            out["train"] = "ok"
        except Exception as exc:
            out["train"] = _first_line(exc)
        finally:
            student.eval()
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def ran_names(module, quantized: dict, ran: set[str]) -> set[str]:
    """Child names of ``module`` whose quantized forward ran."""
    names = {id(m): n for n, m in quantized.items()}
    return {child for child, m in module.named_children() if id(m) in names and names[id(m)] in ran}


def _run_one(name: str, timeout_s: float, threads: int = 1) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    try:
        process = subprocess.run(
            [sys.executable, __file__, "--one", name, "--threads", str(threads)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"model": name, "build": f"timed out after {timeout_s:.0f} s"}
    for line in reversed(process.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    if process.returncode < 0:  # killed by a signal: SIGKILL is most often the OOM killer
        signal_name = {9: "SIGKILL, out of memory?", 11: "SIGSEGV"}.get(-process.returncode, "")
        return {
            "model": name,
            "build": f"crashed: killed by signal {-process.returncode}"
            + (f" ({signal_name})" if signal_name else ""),
        }
    tail = (process.stderr or "").strip().splitlines()[-1:] or ["no output"]
    return {"model": name, "build": f"crashed (exit {process.returncode}): {tail[0][:160]}"}


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def previous_seconds(path: Path) -> dict[str, float]:
    """Model -> seconds of an earlier table at ``path`` (rows that finished; none if absent)."""
    seconds: dict[str, float] = {}
    if not path.is_file():
        return seconds
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) > 1:
            try:
                seconds[cells[0]] = float(cells[-1])
            except ValueError:
                continue
    return seconds


def heaviest_first(names: list[str], seconds: dict[str, float] | None = None) -> list[str]:
    """``names``, the longest to probe first, so that with several jobs the long models
    start at once instead of last: by ``seconds`` of an earlier run where known (a model
    without, e.g. one that timed out, counts as the longest), then by parameters plus
    operations at the probe's input (torchvision's weights metadata: nothing is
    downloaded)."""
    import torchvision

    seconds = seconds or {}

    def size(name: str) -> float:
        try:
            weights = list(torchvision.models.get_model_weights(name))
        except Exception:
            return -1.0
        params_m = max((w.meta.get("num_params", 0) / 1e6 for w in weights), default=0.0)
        gflops = max((float(w.meta.get("_ops", 0.0)) for w in weights), default=0.0)
        at_224 = name.startswith(("vit_", "maxvit", "vgg", "alexnet"))  # see probe()
        return params_m + 10.0 * gflops * (1.0 if at_224 else (32 / 224) ** 2)

    return sorted(names, key=lambda n: (-seconds.get(n, float("inf")), -size(n)))


def run_models(
    names: list[str],
    *,
    jobs: int,
    threads: int,
    timeout_s: float,
    total_timeout_s: float | None = None,
    seconds: dict[str, float] | None = None,
    on_row=None,  # called with each row as it completes (in completion order)
) -> dict[str, dict]:
    """Probe ``names`` in ``jobs`` processes at once (one model each); name -> row.
    ``seconds``: an earlier run's times, for the order (:func:`heaviest_first`)."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    deadline = None if total_timeout_s is None else time.monotonic() + total_timeout_s

    def one(name: str) -> dict:
        limit = timeout_s
        if deadline is not None:
            limit = min(limit, deadline - time.monotonic())
            if limit < 1.0:
                return {
                    "model": name,
                    "build": f"not run: the total time limit ({total_timeout_s:.0f} s) was reached",
                }
        return _run_one(name, limit, threads)

    rows: dict[str, dict] = {}
    order = heaviest_first(names, seconds) if jobs > 1 else list(names)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(one, name): name for name in order}
        for future in as_completed(futures):
            row = future.result()
            rows[futures[future]] = row
            if on_row is not None:
                on_row(row)
    return rows


def _cell(value: str | None) -> str:
    if value is None:
        return "–"
    return str(value).replace("|", "\\|")


def table(rows: list[dict], pending: list[str] = (), how: str = "") -> str:
    """The markdown page: ``rows`` in order, then ``pending`` names; ``how`` says how the
    rows were generated (command, processes, threads, time limit)."""
    how = how or (
        "`nice -n 10 python bench/models_coverage.py --out docs/models.md` on the CPU "
        "(one process per model, a time limit each)"
    )
    lines = [
        "# torchvision classifiers: coverage",
        "",
        f"Generated by {how}. Do not edit by hand.",
        "",
        "Per model, at the smallest input it runs among 32, 64, 96 and 224 pixels (224 for ViT, "
        "MaxViT and the adaptive-pooling AlexNet/VGG), randomly initialised, 10 classes:",
        "",
        f"- **cost**: layers extracted and costed on {CHIP}; MACs in millions at that input.",
        "- **prune**: a student at width 0.5, 8-bit, with physical channel pruning "
        "(Torch-Pruning); how many layers got narrower, and how many channel groups can be "
        "pruned. Groups Torch-Pruning cannot trace (ShuffleNet's channel shuffle) or whose "
        "pruning breaks the forward pass (ViT's hidden size) stay at full width; training-only "
        "layers (GoogLeNet's and Inception v3's auxiliary classifiers) leave the student "
        "(not counted) (in Swin and MaxViT, whose window attention Torch-Pruning cannot follow, "
        "all but the MLP hidden widths); `autocompress search` prints them and run.yaml lists them "
        "(`space.full_width`). Grouped convolutions (RegNet, ResNeXt) are pruned per group.",
        "- **quantized layers**: weight layers that run fake-quantized / weight layers that "
        "run (the projections nn.MultiheadAttention and Swin's window attention read "
        "functionally included: a student routes them through its quantized layers).",
        "- **export**: ONNX with Q/DQ (over 2 GiB of tensors: with ONNX external data), "
        "onnx.checker, and onnxruntime vs PyTorch on 16 random images (fewer for models over "
        f"{EXPORT_MACS_M / 1000:g} GMAC per image, as the cell says): the layer-by-layer "
        "check of the export gate (every layer's input within one quantization step of "
        "PyTorch's from the same upstream tensors) passed, and the top-1 agreement. With "
        "random weights and inputs the logits are nearly tied, so that "
        "agreement is a smoke test, not the export's agreement bound (which `autocompress "
        "export` derives from the student's own noise on a stratified sample of the real test "
        "split).",
        "- **timed out**: the CPU time limit of the generation, not a failure of the model.",
        "",
        "| model | input | params M | MACs M | cost | prune (width 0.5) | quantized layers "
        "| export | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "build" in row:
            lines.append(f"| {row['model']} | – | – | – | {_cell(row['build'])} | – | – | – | – |")
            continue
        lines.append(
            "| "
            + " | ".join(
                _cell(row.get(k))
                for k in (
                    "model",
                    "input",
                    "params_m",
                    "macs_m",
                    "cost",
                    "prune",
                    "quantize",
                    "export",
                    "seconds",
                )
            )
            + " |"
        )
    for name in pending:
        lines.append(f"| {name} | – | – | – | not run yet | – | – | – | – |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--models", help="comma-separated names (default: every classifier)")
    parser.add_argument("--out", default="docs/models.md", help="markdown table ('-': stdout)")
    parser.add_argument("--jsonl", default=None, help="also write one JSON line per model")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per model")
    parser.add_argument(
        "--jobs", type=int, default=1, help="models probed at once (one process each)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per model (default: the machine's cores // --jobs)",
    )
    parser.add_argument(
        "--total-timeout",
        type=float,
        default=None,
        help="seconds for the whole run: a model not started by then is reported as not run",
    )
    parser.add_argument(
        "--resume-from", default=None, help="a --jsonl file of an earlier run: keep its rows"
    )
    parser.add_argument(
        "--table-from",
        nargs="+",
        default=None,
        help="only write the table from these --jsonl files (first row per model wins)",
    )
    args = parser.parse_args()
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--jobs and --threads must be at least 1")
    threads = args.threads or max(1, cores() // args.jobs)
    if args.one:
        print(json.dumps(probe(args.one, threads)))
        return
    from autocompress.core.models import torchvision_model_names

    known = torchvision_model_names()
    names = args.models.split(",") if args.models else known
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"--models: {', '.join(unknown)} not among torchvision's classifiers")
    if args.table_from:
        found: dict[str, dict] = {}
        for path in args.table_from:
            for line in Path(path).read_text().splitlines():
                row = json.loads(line)
                found.setdefault(row["model"], row)
        text = table([found.get(n, {"model": n, "build": "not run yet"}) for n in names])
        if args.out == "-":
            print(text)
        else:
            Path(args.out).write_text(text)
        return
    rows: dict[str, dict] = {}
    if args.resume_from and Path(args.resume_from).is_file():
        for line in Path(args.resume_from).read_text().splitlines():
            row = json.loads(line)
            if row.get("model") in names:
                rows.setdefault(row["model"], row)
    earlier = previous_seconds(Path(args.out)) if args.out != "-" else {}  # before rewriting
    how = (
        "`python bench/models_coverage.py"
        + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
        + f" --timeout {args.timeout:g}"
        + (f" --total-timeout {args.total_timeout:g}" if args.total_timeout else "")
        + f" --out docs/models.md` on {cores()} CPU cores ({args.jobs} process"
        + ("es" if args.jobs > 1 else "")
        + f" at once, one model each, {threads} torch thread"
        + ("s" if threads > 1 else "")
        + f" each, a time limit of {args.timeout:g} s per model)"
        + (
            f"; the rows of {len(rows)} models come from an earlier run (`--resume-from`)"
            if rows
            else ""
        )
    )

    def write(row: dict) -> None:
        rows[row["model"]] = row
        print(json.dumps({k: v for k, v in row.items() if k != "prune_trace"}), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as handle:
                handle.write(json.dumps(row) + "\n")
        if args.out != "-":  # rewritten after every model: partial is useful
            Path(args.out).write_text(
                table(
                    [rows[n] for n in names if n in rows], [n for n in names if n not in rows], how
                )
            )

    run_models(
        [n for n in names if n not in rows],
        jobs=args.jobs,
        threads=threads,
        timeout_s=args.timeout,
        total_timeout_s=args.total_timeout,
        seconds=earlier,
        on_row=write,
    )
    text = table([rows[n] for n in names if n in rows], how=how)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
