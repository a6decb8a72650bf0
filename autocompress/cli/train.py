"""``autocompress train``: train the baseline (teacher) model and save it."""

from __future__ import annotations

from pathlib import Path

import click

from autocompress.cli.console import print_json, stderr, stdout


@click.command("train")
@click.option(
    "--model",
    default="small_cnn",
    show_default=True,
    help="torchvision name (resnet18, mobilenet_v2 …), small_cnn, or path/file.py:function.",
)
@click.option(
    "--dataset", default="digits", show_default=True, help="digits, cifar10, or imagefolder:PATH."
)
@click.option("--epochs", type=float, default=15, show_default=True, help="Training epochs.")
@click.option("--lr", type=float, default=None, help="Peak learning rate [default: 0.05 (SGD)].")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("teacher.pt"),
    show_default=True,
    help="Where to save the checkpoint.",
)
@click.option(
    "--small-input/--no-small-input",
    default=None,
    help="32×32 stem for torchvision models [default: on for images ≤ 64 px].",
)
@click.option(
    "--augment/--no-augment",
    default=None,
    help="Random crop + flip [default: on for images ≥ 16 px].",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to look for dataset files in first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(
    model: str,
    dataset: str,
    epochs: float,
    lr: float | None,
    batch_size: int,
    optimizer: str,
    out: Path,
    small_input: bool | None,
    augment: bool | None,
    device: str,
    seed: int,
    data_root: Path | None,
    as_json: bool,
) -> None:
    """Train the baseline (teacher) model and save it for `autocompress search --teacher`.

    \b
    Examples:
      autocompress train --model small_cnn --dataset digits --epochs 10 --out teacher.pt
      autocompress train --model resnet18 --dataset cifar10 --epochs 30 --out r18.pt
    """
    from autocompress.compress.teacher import train_teacher
    from autocompress.compress.training import resolve_device
    from autocompress.core.data import load_dataset
    from autocompress.core.errors import ConfigError

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if epochs <= 0:
        raise ConfigError(f"--epochs must be positive, got {epochs}")
    dev = resolve_device(device)
    data = load_dataset(dataset, seed=seed, root=data_root, device=dev)
    stderr.print(
        f"training [bold]{model}[/] on [bold]{dataset}[/] ({len(data.train)} train / "
        f"{len(data.val)} val / {len(data.test)} test, {data.input_shape}) on {dev} "
        f"for {epochs:g} epochs"
    )
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as bar:
        task = bar.add_task("teacher", total=1.0)
        result = train_teacher(
            model,
            data,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            device=dev,
            out=out,
            optimizer=optimizer,
            augment=augment,
            small_input=small_input,
            progress=lambda _stage, done: bar.update(task, completed=done),
        )
    summary = {
        "model": result.spec.name,
        "dataset": result.dataset,
        "epochs": epochs,
        "val_accuracy": round(result.val_accuracy, 4),
        "test_accuracy": round(result.test_accuracy, 4),
        "seconds": round(result.seconds, 2),
        "checkpoint": str(result.checkpoint),
    }
    if as_json:
        print_json(summary)
        return
    stdout.print(
        f"val accuracy  {result.val_accuracy:.2%}\ntest accuracy {result.test_accuracy:.2%}\n"
        f"trained in {result.seconds:.1f} s; saved {result.checkpoint}"
    )
