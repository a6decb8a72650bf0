"""``autocompress finetune RUN (--trial N | --pick RULE)``: recovery training of one trial."""

from __future__ import annotations

from pathlib import Path

import click

from autocompress.cli.console import fraction_progress, print_json, stdout
from autocompress.compress.recipe import (
    RECOVERY_RECIPE,
    SHORT_RUN_EPOCHS,
    SHORT_RUN_FEATURE_WEIGHT,
    SHORT_RUN_MAX_BATCH_SIZE,
    default_recovery_epochs,
)

DEVICE_CHOICES = click.Choice(["auto", "cpu", "cuda"])


def _recovery_epochs_text() -> str:
    """The recovery-epoch defaults as :func:`default_recovery_epochs` resolves them."""
    parts = []
    for dataset, name in (
        ("digits", "digits"),
        ("cifar10", "cifar10"),
        ("other", "other datasets"),
    ):
        cpu, gpu = (default_recovery_epochs(dataset, kind) for kind in ("cpu", "cuda"))
        parts.append(f"{name} {cpu} on the CPU / {gpu} on a GPU")
    return "; ".join(parts)


@click.command("finetune")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--trial", type=int, help="Trial number to recover.")
@click.option(
    "--pick",
    metavar="RULE",
    help='Choose by rule, e.g. "max accuracy where latency_ms <= 3".',
)
@click.option(
    "--epochs",
    type=float,
    help=f"Recovery epochs. Default per dataset and device: {_recovery_epochs_text()}.",
)
@click.option("--device", type=DEVICE_CHOICES, default="auto", show_default=True)
@click.option(
    "--batch-size",
    type=int,
    help=f"Images per step (default: 512 on a GPU, {SHORT_RUN_MAX_BATCH_SIZE} for runs of "
    f"{SHORT_RUN_EPOCHS:g} epochs or fewer; 128 on the CPU).",
)
@click.option(
    "--lr",
    type=float,
    help=(
        f"Peak learning rate for every student (default: the recipe's, AdamW "
        f"{RECOVERY_RECIPE.lr:g}; {RECOVERY_RECIPE.low_bit_lr:g} for <= 4-bit weights)."
    ),
)
@click.option(
    "--feature-weight",
    type=float,
    help=(
        "Weight of feature distillation: each kept convolution learns the teacher's output "
        f"at its channels (default {RECOVERY_RECIPE.feature_weight:g}, "
        f"{SHORT_RUN_FEATURE_WEIGHT:g} for runs of {SHORT_RUN_EPOCHS:g} epochs or fewer; "
        "0: logits only)."
    ),
)
@click.option(
    "--compile/--no-compile",
    default=None,
    help="torch.compile the student (default: off; on a GPU the step replays CUDA graphs).",
)
@click.option("--seed", type=int, default=0, show_default=True)
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
    epochs: float | None,
    device: str,
    batch_size: int | None,
    lr: float | None,
    feature_weight: float | None,
    compile: bool | None,
    seed: int,
    trust_model_code: bool,
    as_json: bool,
) -> None:
    """Train one trial of RUN from the teacher for longer: models/trial-NNNN/recovered.pt.

    The trial's configuration is rebuilt from the teacher (calibrated PTQ
    start), then distilled with the recovery recipe: LSQ learned step sizes
    for <= 4-bit weights, learned activation clipping, augmentation with the
    teacher run on every augmented batch, AdamW 1e-3 (5e-4 for students with
    <= 4-bit weights) with warm-up and cosine decay, KD T=4 on the logits plus
    feature distillation (every kept convolution learns the teacher's output at
    its channels). A diverging run is retried once at a tenth of the LR.
    Killed? Run the same command again: it resumes from the last epoch.
    `autocompress export` then uses the recovered weights.

    \b
    Examples:
      autocompress finetune runs/NAME --pick "max accuracy"
      autocompress finetune runs/NAME --trial 17 --epochs 30 --device cuda
    """
    from autocompress.core.errors import ConfigError
    from autocompress.recover.api import recover

    if (trial is None) == (pick is None):
        raise ConfigError("give exactly one of --trial N or --pick RULE")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    with fraction_progress("recovery training") as progress:
        result = recover(
            run_dir,
            trial=trial,
            pick=pick,
            epochs=epochs,
            device=device,
            batch_size=batch_size,
            lr=lr,
            feature_weight=feature_weight,
            compile=compile,
            seed=seed,
            trust_model_code=trust_model_code,
            progress=progress,
        )
    info = result.info
    if as_json:
        print_json(
            {
                "trial": result.trial,
                "recovered_pt": str(result.path),
                "recovered_json": str(result.json_path),
                **info,
            }
        )
        return
    proxy = info.get("proxy_test_accuracy")
    teacher = info.get("teacher_test_accuracy")
    resumed = (
        f", resumed from epoch {result.resumed_from_epoch}" if result.resumed_from_epoch else ""
    )
    stdout.print(
        f"recovered trial {result.trial}: {info['epochs']:g} epochs on {info['device']} in "
        f"{info['seconds']:.1f} s ({info['seconds_per_epoch']:.2f} s/epoch{resumed})"
    )
    stdout.print(
        f"  test accuracy {info['test_accuracy']:.2%} (proxy "
        + (f"{proxy:.2%}" if proxy is not None else "–")
        + ", teacher "
        + (f"{teacher:.2%}" if teacher is not None else "–")
        + f"); validation {info['accuracy']:.2%}"
    )
    if info.get("retried"):
        stdout.print(
            f"  the first attempt diverged ({info['first_failure']}); "
            f"retried at lr {info['recipe']['lr_used']:g}"
        )
    stdout.print(f"  {result.path}\n  {result.json_path}")
    stdout.print(f"next: autocompress export {run_dir} --trial {result.trial}")
