"""``autocompress search``: the budget-constrained search, printed as a Pareto table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from autocompress.cli.calibration_option import calibration_options
from autocompress.cli.console import StderrNotices, print_json, stderr, stdout
from autocompress.cli.metric_options import budget_options, objective_help
from autocompress.core.metrics import metric_of_budget
from autocompress.search.settings import DEFAULT_OBJECTIVES


def _front_tables(result: Any) -> list[Table]:
    """The feasible front of every chip (main chip first), with the report's columns."""
    from autocompress.core.budget import Budget
    from autocompress.report.table import records_table

    budget = Budget(**{k: v for k, v in result.budget.items() if v is not None})
    return [
        records_table(
            result.front(chip),
            chip,
            budget,
            title=f"Pareto front on {chip} ({len(result.fronts.get(chip, []))} models)",
        )
        for chip in result.chips
    ]


def _per_dataset(value_of: Callable[[Any], float]) -> str:
    """``15 on digits, 30 otherwise``: a search default as the run would resolve it."""
    from autocompress.search.settings import SearchSettings

    digits = value_of(SearchSettings(dataset="digits"))
    other = value_of(SearchSettings(dataset="cifar10"))
    if digits == other:
        return _text(digits)
    return f"{_text(digits)} on digits, {_text(other)} otherwise"


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" for v in value)
    return f"{value:g}"


def _defaults() -> dict[str, str]:
    from autocompress.search import prepare
    from autocompress.search.settings import DEFAULT_OBJECTIVES, SearchSettings

    settings = SearchSettings()
    return {
        "trials": str(settings.trials),
        "epochs": _per_dataset(prepare.finetune_epochs),
        "teacher_epochs": _per_dataset(prepare.teacher_epochs),
        "rungs": _per_dataset(prepare.promotion_rungs),
        "seed": str(settings.seed),
        "cpus_per_trial": f"{settings.cpus_per_trial:g}",
        "gpus_per_trial": f"{settings.gpus_per_trial:g}",
        "objectives": ",".join(DEFAULT_OBJECTIVES),
    }


_DEFAULT = _defaults()


def _summary_dict(result: Any) -> dict[str, Any]:
    return {
        "run_dir": str(result.run_dir),
        "chip": result.chip,
        "objectives": result.objectives,
        "counts": result.counts,
        "planned_trained": result.planned,
        "stop_reason": result.stop_reason,
        "promotion": result.promotion,
        "budget_sources": result.budget_sources,
        "fronts": result.fronts,
        "budget": result.budget,
        "teacher": result.teacher,
        "interrupted": result.interrupted,
        "elapsed_s": round(result.elapsed_s, 2),
    }


@click.command(name="search")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="YAML config (or a previous run.yaml).",
)
@click.option(
    "--model",
    help="fc_cnn (default, with hidden=8192; with --teacher: the teacher's), small_cnn, a "
    "torchvision name, or path/file.py:function.",
)
@click.option(
    "--model-arg",
    "model_arg",
    multiple=True,
    metavar="KEY=VALUE",
    help="Keyword argument of the model function, e.g. width=32; repeat for more.",
)
@click.option("--dataset", help="digits (default), cifar10, imagefolder:PATH.")
@click.option(
    "--input-size",
    help="Image size of an imagefolder: dataset, 32 (square) or HxW such as 224x192 "
    "(short side resized, center crop).",
)
@click.option(
    "--mean", help="Per-channel normalisation mean, e.g. 0.485,0.456,0.406 (default: data's)."
)
@click.option("--std", help="Per-channel normalisation std, e.g. 0.229,0.224,0.225 (with --mean).")
@click.option(
    "--chip", "chips", multiple=True, help="Chip id; repeat for more (the first is the main chip)."
)
@budget_options("search")
@click.option(
    "--objective",
    "objectives",
    multiple=True,
    help=objective_help(DEFAULT_OBJECTIVES),
)
@click.option(
    "--space", help="Search space: a built-in name (see `autocompress spaces`) or a YAML file."
)
@click.option(
    "--trials",
    type=int,
    help=f"Trained candidates for the run (default {_DEFAULT['trials']}). Infeasible and "
    "duplicate proposals are recorded but not counted; the run stops after 10 × this many "
    "proposals.",
)
@click.option(
    "--timeout", "timeout_s", type=float, help="Stop starting trials after this many seconds."
)
@click.option("--sampler", help="tpe (default), nsga2, random, qmc, gp, nsga3.")
@click.option(
    "--rungs",
    help=f"Promotion rungs as factors of --epochs (default {_DEFAULT['rungs']}): the best "
    "third of each rung is fine-tuned again for the next rung's epochs, then the front; "
    "1 = off.",
)
@click.option(
    "--no-anchors",
    is_flag=True,
    help="Do not start with the uniform-scaling configurations (each width at the chip's "
    "default bits, and the teacher at int8).",
)
@click.option("--backend", type=click.Choice(["optuna", "ray"]), help="optuna (default) or ray.")
@click.option(
    "--workers", type=int, help="Parallel trials: processes, or Ray workers (one per GPU)."
)
@click.option("--address", help="Ray cluster address (default: start a local Ray runtime).")
@click.option(
    "--cpus-per-trial",
    type=float,
    help=f"Ray: CPUs per trial (default {_DEFAULT['cpus_per_trial']}).",
)
@click.option(
    "--gpus-per-trial",
    type=float,
    help=f"Ray: GPUs per trial (default {_DEFAULT['gpus_per_trial']}).",
)
@click.option(
    "--out", type=click.Path(file_okay=False), help="Run directory (default runs/<name>)."
)
@click.option("--name", help="Run name (default <dataset>-<chip>-<UTC time>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option(
    "--seed",
    type=int,
    help=f"Seed of data split, teacher and sampler (default {_DEFAULT['seed']}).",
)
@click.option(
    "--teacher",
    type=click.Path(dir_okay=False),
    help="Your trained model: torch.save(model.state_dict()) (plain or under state_dict / "
    "model / model_state_dict), or a checkpoint from `autocompress train`.",
)
@click.option(
    "--epochs",
    type=float,
    help=f"Fine-tune epochs of every trained trial, the first rung (default {_DEFAULT['epochs']}).",
)
@click.option(
    "--feature-weight",
    type=float,
    help="Feature distillation in every trial: each kept convolution also learns the "
    "teacher's output at its channels, with this weight (default 0: logits only). It helps "
    "short fine-tunes of low-bit students; the teacher then runs on every batch.",
)
@click.option(
    "--teacher-epochs",
    type=int,
    help=f"Teacher training epochs when none is given (default {_DEFAULT['teacher_epochs']}).",
)
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Training device (default auto)."
)
@click.option(
    "--trust-model-code",
    is_flag=True,
    help="--resume: import the run's file.py model even if it is not the file recorded at "
    "creation.",
)
@click.option("--no-progress", is_flag=True, help="No live progress line.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of the table.")
@calibration_options
def command(
    config_path: str | None,
    chips: tuple[str, ...],
    objectives: tuple[str, ...],
    model_arg: tuple[str, ...],
    no_progress: bool,
    as_json: bool,
    rungs: str | None,
    no_anchors: bool,
    **options: Any,
) -> None:
    """Search for compressed models that meet a chip's budgets.

    \b
    With no arguments: the digits, fc_cnn (a CNN with a hidden layer of 8192),
    rockchip/rv1126, 30 trained trials (1 epoch each, the best third promoted to
    3 epochs, then the front) and a latency budget derived halfway between the
    cheapest configuration of the space and the teacher at int8 (plus the chip's
    own budgets). The uniform-scaling configurations are tried first.
    \b
    Examples:
      autocompress search
      autocompress search --chip rockchip/rv1126 --chip nvidia/orin-nano --trials 60
      autocompress search --model resnet18 --dataset cifar10 --latency-ms 4 \\
          --memory-kb 2048 --power-mw 1500
      autocompress search --resume --out runs/<name> --trials 80
      autocompress search --model mynet.py:mynet --teacher mine.pt \\
          --dataset imagefolder:images --input-size 32
    """
    from autocompress.search.api import search
    from autocompress.search.settings import parse_floats, parse_model_args

    options["model_args"] = parse_model_args(model_arg) or None
    for stat in ("mean", "std"):
        if options.get(stat) is not None:
            options[stat] = parse_floats(options[stat], stat)

    embedded = (
        config_path is None
        and not options.get("resume")
        and options.get("model") is None
        and options.get("dataset") is None
        and options.get("latency_ms") is None
    )
    factors = None
    if rungs is not None:
        try:
            factors = [float(v) for v in rungs.replace(" ", "").split(",") if v]
        except ValueError:
            from autocompress.core.errors import ConfigError

            raise ConfigError(
                f"--rungs must be numbers separated by commas, got {rungs!r}",
                hint="e.g. --rungs 1,3,9",
            ) from None
    result = search(
        config_path,
        chip=list(chips) or None,
        objectives=list(objectives) or None,
        rungs=factors,
        anchors=False if no_anchors else None,
        show_progress=not no_progress and not as_json,
        notices=StderrNotices() if not no_progress and not as_json else None,
        embedded_default=embedded,
        **options,
    )
    if as_json:
        print_json(_summary_dict(result))
        _exit_if_cancelled(result)
        return
    counts = result.counts
    # A pipe or a log gets the full table, not one cut to 80 columns.
    wide = stdout if stdout.is_terminal else Console(highlight=False, width=max(stdout.width, 132))
    for table in _front_tables(result):
        wide.print(table)
    teacher = result.teacher
    if teacher.get("val_accuracy") is not None:
        stdout.print(
            f"teacher ({teacher.get('source')}): val {teacher['val_accuracy']:.3f}"
            f" · test {teacher['test_accuracy']:.3f}"
        )
    parts = []
    for key, value in result.budget.items():
        if value is None:
            continue
        limited = metric_of_budget(key)
        text = f"{key} ≤ {value:g}" if limited.sense == "min" else f"{limited.name} ≥ {value:g}"
        source = result.budget_sources.get(key, "")
        if source.startswith("derived"):
            text += f" ({source})"
        parts.append(text)
    stdout.print(f"budget on {result.chip}: {', '.join(parts)}", soft_wrap=True)
    stdout.print(
        f"trials: {counts.get('complete', 0)} trained of {result.planned} planned (--trials "
        f"counts trained ones), {counts.get('infeasible', 0)} infeasible (not trained), "
        f"{counts.get('duplicate', 0)} duplicates (not retrained), "
        f"{counts.get('failed', 0)} failed · {result.elapsed_s:.0f} s"
        + (" · [yellow]stopped early[/]" if result.interrupted else "")
    )
    rung_epochs = result.promotion.get("rung_epochs", [])
    if len(rung_epochs) > 1:
        front_epochs = sorted(
            {max((r.get("epochs", 0) for r in t.rungs), default=0) for t in result.front()}
        )
        stdout.print(
            f"promotion: rungs {' → '.join(f'{e:g}' for e in rung_epochs)} epochs, "
            f"{len(result.promotion.get('promoted', []))} promotions this session; "
            f"front accuracies from {', '.join(f'{e:g}' for e in front_epochs) or '-'}-epoch "
            "fine-tunes"
        )
    if result.stop_reason:
        stdout.print(f"[yellow]{result.stop_reason}[/]")
    stdout.print(f"run directory: {result.run_dir}")
    stdout.print(
        f"next: autocompress report {result.run_dir}   ·   "
        f"autocompress export {result.run_dir} --trial N"
    )
    if result.interrupted:
        stderr.print(f"resume with: autocompress search --resume --out {result.run_dir}")
    _exit_if_cancelled(result)


def _exit_if_cancelled(result: Any) -> None:
    """Ctrl-C: exit 130 (the shell convention) so `search … && export …` stops there."""
    if result.cancelled:
        stderr.print("[yellow]interrupted[/]: the finished trials are saved")
        raise SystemExit(130)
