"""CIFAR-10 ResNet-18 compressed for a Rockchip NPU, from Python.

Run from the repository root (a GPU makes it practical)::

    python examples/cifar10_rockchip/search_cifar10.py --trials 60
    # a quick look on a CPU:
    python examples/cifar10_rockchip/search_cifar10.py --trials 4 --epochs 0.2 --limit 2000
"""

from __future__ import annotations

import argparse

import autocompress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chip", default="rockchip/rk3588")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--epochs", type=float, default=2.0, help="fine-tune epochs per trial")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--limit", type=int, default=None, help="images per split (quick runs)")
    parser.add_argument("--backend", default="optuna", choices=["optuna", "ray"])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="runs/cifar10-rk3588-py")
    args = parser.parse_args()

    result = autocompress.search(
        model="resnet18",
        dataset="cifar10",
        data_limit=args.limit,
        chip=[args.chip, "rockchip/rv1126"],
        latency_ms=4,
        memory_kb=8192,
        objectives=["accuracy", "latency_ms"],
        space="default",
        sampler="nsga2",
        trials=args.trials,
        epochs=args.epochs,
        teacher_epochs=args.teacher_epochs,
        backend=args.backend,
        workers=args.workers,
        gpus_per_trial=1 if args.backend == "ray" else None,
        out=args.out,
        show_progress=True,
    )
    print(f"teacher: {result.teacher}")
    print(f"{len(result.trials)} trials, counts {result.counts}, {result.elapsed_s:.0f} s")
    for record in result.front():
        cost = record.costs[result.chip]
        print(
            f"trial {record.number:3d}  acc {record.metrics['accuracy']:.3f}  "
            f"latency {cost['latency_ms']:.3f} ms  memory {cost['peak_memory_kb']:.0f} KB"
        )
    print(f"next: autocompress report {result.run_dir}")


if __name__ == "__main__":
    main()
