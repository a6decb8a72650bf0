"""``autocompress export RUN (--trial N | --pick RULE)``: ONNX + PyTorch + deploy card."""

from __future__ import annotations

from pathlib import Path

import click

from autocompress.cli.console import print_json, stdout


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--trial", type=int, help="Trial number to export.")
@click.option(
    "--pick",
    metavar="RULE",
    help='Choose by rule, e.g. "max accuracy where latency_ms <= 3 and peak_memory_kb <= 2048".',
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Output directory (default RUN/models/trial-NNNN).",
)
@click.option(
    "--recover-epochs",
    type=float,
    metavar="E",
    help="First run `autocompress finetune` for E epochs, then export the recovered weights.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Device of the recovery training (--recover-epochs).",
)
@click.option(
    "--trust-model-code",
    is_flag=True,
    help="Import the run's file.py model even if it is not the file recorded at creation.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(
    run_dir: Path,
    trial: int | None,
    pick: str | None,
    out: Path | None,
    recover_epochs: float | None,
    device: str,
    trust_model_code: bool,
    as_json: bool,
) -> None:
    """Export one trial of RUN: model.onnx (Q/DQ per layer), model.pt, card.json, card.md.

    \b
    Examples:
      autocompress export runs/NAME --trial 17
      autocompress export runs/NAME --pick "max accuracy where latency_ms <= 3"
      autocompress export runs/NAME --pick "min latency_ms where accuracy >= 0.9" --out deploy/
      autocompress export runs/NAME --pick "max accuracy" --recover-epochs 30

    The recovered weights of `autocompress finetune` are exported when they
    exist (the card says which weights, with both accuracies).

    \b
    --out must be a new or empty folder, or one holding a previous export
    (replaced file by file); anything else is refused and nothing is written.
    """
    from autocompress.core.errors import ConfigError
    from autocompress.export.api import export

    if (trial is None) == (pick is None):
        raise ConfigError("give exactly one of --trial N or --pick RULE")
    if recover_epochs is None:
        result = export(run_dir, trial=trial, pick=pick, out=out, trust_model_code=trust_model_code)
    else:
        from autocompress.cli.console import fraction_progress

        with fraction_progress("recovery training") as progress:
            result = export(
                run_dir,
                trial=trial,
                pick=pick,
                out=out,
                trust_model_code=trust_model_code,
                recover_epochs=recover_epochs,
                device=device,
                recover_progress=progress,
            )
    check = result.check
    if as_json:
        print_json(
            {
                "trial": result.trial,
                "directory": str(result.directory),
                "files": [
                    str(p)
                    for p in (result.onnx_path, result.pt_path, result.card_json, result.card_md)
                ]
                + [str(p) for p in result.chip_files],
                "check": check.to_dict(),
                "weights": result.card.get("weights"),
                "accuracy": result.card.get("accuracy"),
            }
        )
        return
    stdout.print(f"exported trial {result.trial} to {result.directory}")
    weights, accuracy = result.card.get("weights") or {}, result.card.get("accuracy") or {}
    if weights.get("source") == "recovered":
        stdout.print(
            f"  weights: recovered ({weights.get('epochs'):g} epochs): test "
            f"{accuracy.get('recovered_test', 0):.2%} (search proxy "
            f"{accuracy.get('proxy_test') or 0:.2%})"
        )
    else:
        stdout.print(
            "  weights: the search's proxy fine-tune "
            f"(`autocompress finetune {run_dir} --trial {result.trial}` trains it longer)"
        )
    for path in (
        result.onnx_path,
        result.pt_path,
        result.card_json,
        result.card_md,
        *result.chip_files,
    ):
        stdout.print(f"  {path}")
    stdout.print(
        f"ONNX vs PyTorch on {check.images} test images: top-1 agreement "
        f"{check.top1_agreement:.2%} (accepted at >= {check.min_agreement or 0:.2%}; PyTorch "
        f"with the measured float noise: {check.tolerance.get('simulated_agreement', 1):.2%}), "
        f"max logit error {check.max_abs_error:.3g}"
    )
