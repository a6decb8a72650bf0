"""Datasets as tensors in memory: ``load_dataset(name) -> DatasetSplits``.

Small image datasets live whole in memory (on the GPU when training there) as
normalised float tensors; training batches are index slices, so no
``DataLoader`` and no per-sample Python work runs in a training loop.

Names:

- ``digits`` — scikit-learn's 8×8 handwritten digits (1 channel, 10 classes);
  ships inside scikit-learn, the embedded default.
- ``cifar10`` — CIFAR-10 (3×32×32): torchvision's copy if one is already under
  ``root``, else the JPEG ImageFolder archive ``cifar10-jpeg.tar.gz`` (or its
  extracted ``cifar10/`` folder) found in ``root``, ``$AUTOCOMPRESS_DATA``,
  ``../shared/datasets`` (relative to the working directory and to the
  repository), else a torchvision download where the network allows.
- ``imagefolder:PATH`` — a folder (or ``.tar``/``.tar.gz`` archive) in
  torchvision's ImageFolder layout: ``PATH/train/<class>/*``, ``PATH/val/<class>/*``
  and ``PATH/test/<class>/*`` (a missing ``val/`` is carved from train, a missing
  ``test/`` from train too, or ``val/`` is the test split when only it is there), or
  just ``PATH/<class>/*``; every carved split is seeded and stratified (each class
  in proportion). Grayscale folders stay one channel; any colour image makes the
  dataset RGB. With ``input_size`` (or when sizes differ: the most common size),
  images follow torchvision's evaluation transform: the short side resized to
  ``size / 0.875`` (256 for 224), then a center crop; images already at the size
  are kept as they are.
- ``synthetic`` — random, learnable 3×16×16 images; for unit tests only.

Image folders are decoded once (a thread pool running PIL) and cached as uint8
tensors under ``$AUTOCOMPRESS_CACHE`` or ``~/.cache/autocompress/datasets/``,
keyed on the source path, its size and modification time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import tarfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from autocompress.core.errors import ConfigError, UnknownNameError
from autocompress.core.validation_split import DEFAULT_VAL_FRACTION

DATASET_NAMES = ("digits", "cifar10", "imagefolder:PATH", "synthetic")
CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
_CACHE_VERSION = 2
#: torchvision's evaluation crop: resize the short side to size / 0.875, crop the center.
EVAL_CROP_FRACTION = 0.875


@dataclass(frozen=True)
class Split:
    """One split: ``images`` (N×C×H×W float, normalised) and ``labels`` (N, int64)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: str | torch.device) -> Split:
        """The same split on ``device``."""
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class DatasetSplits:
    """Train / validation / test splits of one dataset, plus what describes it.

    Attributes:
        name: the dataset name as given to :func:`load_dataset`.
        train / val / test: the splits (validation is carved from training, seeded).
        num_classes: number of classes.
        input_shape: (C, H, W) of one image.
        class_names: class names in label order.
        mean / std: per-channel normalisation applied to the images
            (``x_normalised = (x_in_0_1 - mean) / std``); export needs it.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to(self, device: str | torch.device) -> DatasetSplits:
        """The same splits with every tensor on ``device``."""
        return replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )

    @property
    def device(self) -> torch.device:
        return self.train.images.device


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    root: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    input_size: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> DatasetSplits:
    """Load a dataset by name as normalised tensors split into train/val/test.

    Args:
        name: ``digits``, ``cifar10``, ``imagefolder:PATH`` or ``synthetic``.
        seed: seeds the validation split (and any subset taken for ``limit``).
        val_fraction: fraction of the training images held out for validation.
        root: a folder to look for dataset files in first.
        device: where the tensors are placed.
        limit: keep at most this many images per source split (train, test),
            chosen by a seeded shuffle; for quick tests.
        input_size: ``(H, W)`` of an image folder's images (see the module docstring).
        mean / std: per-channel normalisation of images in [0, 1] (one value for
            every channel, or one per channel); default: the training split's statistics.

    Raises:
        UnknownNameError: the name is not one of the above.
        ConfigError: the dataset cannot be found or read, or an argument is invalid.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if limit is not None and limit < 10:
        raise ConfigError(f"limit must be at least 10 images, got {limit}")
    size = (int(input_size[0]), int(input_size[1])) if input_size is not None else None
    if size is not None and not name.startswith("imagefolder:"):
        raise ConfigError(
            f"--input-size applies to imagefolder: datasets, not {name!r} "
            "(its images have a fixed size)"
        )
    if name == "digits":
        splits = _load_digits(seed=seed, val_fraction=val_fraction, limit=limit)
    elif name == "synthetic":
        splits = _load_synthetic(seed=seed, val_fraction=val_fraction, limit=limit)
    elif name == "cifar10":
        splits = _load_cifar10(root, seed=seed, val_fraction=val_fraction, limit=limit)
    elif name.startswith("imagefolder:"):
        path = Path(name.split(":", 1)[1]).expanduser()
        if not path.exists():
            raise ConfigError(f"image folder {str(path)!r} does not exist (from dataset {name!r})")
        raw = _read_image_source(path, limit=limit, seed=seed, size=size)
        splits = _splits_from_raw(name, raw, seed=seed, val_fraction=val_fraction, stratified=True)
    else:
        raise UnknownNameError(
            "dataset",
            name,
            ["digits", "cifar10", "synthetic", "imagefolder:"],
            list_hint="Known datasets: digits (embedded default), cifar10, imagefolder:PATH "
            "(an ImageFolder directory or .tar.gz archive), synthetic (tests only).",
        )
    if mean is not None or std is not None:
        splits = _renormalised(splits, mean, std)
    return splits.to(device) if torch.device(device) != torch.device("cpu") else splits


def _per_channel(values: Sequence[float] | None, channels: int, what: str) -> torch.Tensor:
    if values is None:
        raise ConfigError("mean and std go together: give both (--mean and --std)")
    items = [float(v) for v in values]
    if len(items) == 1:
        items = items * channels
    if len(items) != channels:
        raise ConfigError(
            f"--{what} has {len(items)} values, the images have {channels} channels",
            hint="Give one value, or one per channel.",
        )
    return torch.tensor(items)


def _renormalised(
    splits: DatasetSplits, mean: Sequence[float] | None, std: Sequence[float] | None
) -> DatasetSplits:
    """The splits normalised with the given mean/std instead of the training statistics."""
    channels = splits.input_shape[0]
    new_mean = _per_channel(mean, channels, "mean")
    new_std = _per_channel(std, channels, "std")
    if bool((new_std <= 0).any()):
        raise ConfigError(f"--std values must be positive, got {new_std.tolist()}")
    old_mean, old_std = torch.tensor(splits.mean), torch.tensor(splits.std)
    scale = (old_std / new_std)[None, :, None, None]
    shift = ((old_mean - new_mean) / new_std)[None, :, None, None]

    def renorm(split: Split) -> Split:
        return Split((split.images * scale + shift).contiguous(), split.labels)

    return replace(
        splits,
        train=renorm(splits.train),
        val=renorm(splits.val),
        test=renorm(splits.test),
        mean=tuple(float(v) for v in new_mean),
        std=tuple(float(v) for v in new_std),
    )


def describe_dataset(
    name: str, root: str | os.PathLike[str] | None = None
) -> tuple[int, int, tuple[int, int]] | None:
    """``(num_classes, channels, (H, W))`` of a dataset without decoding it (an image
    folder: a sample of its images), or None when that needs the decode (an archive);
    for checking a model and a teacher before the decode."""
    fixed = {"digits": (10, 1, (8, 8)), "cifar10": (10, 3, (32, 32)), "synthetic": (4, 3, (16, 16))}
    if name in fixed:
        return fixed[name]
    if not name.startswith("imagefolder:"):
        return None
    path = Path(name.split(":", 1)[1]).expanduser()
    if not path.is_dir():
        return None
    from PIL import Image  # Pillow loads only for image folders

    _blobs, members = _list_members(path)
    _splits, classes = _layout(members, path)
    channels = 1
    sizes: dict[tuple[int, int], int] = {}
    step = max(1, len(members) // 64)  # a sample: colour anywhere makes the dataset RGB
    for member in members[::step]:
        try:
            with Image.open(path / member) as image:
                if image.mode not in _GRAY_MODES:
                    channels = 3
                sizes[(image.height, image.width)] = sizes.get((image.height, image.width), 0) + 1
        except Exception:  # reported by the decode, with the file named
            continue
    if not sizes:
        return None
    return len(classes), channels, max(sizes, key=lambda s: (sizes[s], s))


# ----------------------------------------------------------------------------------------------
# splitting and normalisation


def _seeded_permutation(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)


def _carve_validation(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int,
    val_fraction: float,
    stratified: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if stratified:
        val_idx, train_idx = stratified_split(labels, val_fraction, seed)
    else:
        order = _seeded_permutation(len(labels), seed)
        n_val = max(1, round(len(labels) * val_fraction))
        val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]


def stratified_split(
    labels: torch.Tensor, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(picked, rest)``: ``fraction`` of every class (at least one image of a
    class with two or more), seeded; both sorted."""
    picked: list[torch.Tensor] = []
    rest: list[torch.Tensor] = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        order = idx[_seeded_permutation(len(idx), seed * 1009 + int(c))]
        k = round(len(idx) * fraction)
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        picked.append(order[:k])
        rest.append(order[k:])
    return torch.cat(picked).sort().values, torch.cat(rest).sort().values


def stratified_sample(labels: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """Up to ``count`` indices with the classes in proportion (round-robin over
    seeded per-class orders), sorted; for checks on a fixed number of images."""
    if count >= len(labels):
        return torch.arange(len(labels))
    queues = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        queues.append(idx[_seeded_permutation(len(idx), seed * 1009 + int(c))].tolist())
    out: list[int] = []
    depth = 0
    while len(out) < count:
        for queue in queues:
            if depth < len(queue) and len(out) < count:
                out.append(queue[depth])
        depth += 1
    return torch.tensor(sorted(out), dtype=torch.long)


def _normalised(
    name: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    class_names: Sequence[str],
) -> DatasetSplits:
    """Inputs are floats in [0, 1]; normalise with the training split's per-channel statistics."""
    mean = train_x.mean(dim=(0, 2, 3))
    std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-6)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return ((x - mean[None, :, None, None]) / std[None, :, None, None]).contiguous()

    return DatasetSplits(
        name=name,
        train=Split(norm(train_x), train_y.long()),
        val=Split(norm(val_x), val_y.long()),
        test=Split(norm(test_x), test_y.long()),
        num_classes=len(class_names),
        input_shape=tuple(train_x.shape[1:]),  # type: ignore[arg-type]
        class_names=tuple(class_names),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


def _subset(x: torch.Tensor, y: torch.Tensor, limit: int | None, seed: int):
    if limit is None or limit >= len(y):
        return x, y
    idx = _seeded_permutation(len(y), seed + 7919)[:limit].sort().values
    return x[idx], y[idx]


# ----------------------------------------------------------------------------------------------
# digits and synthetic


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images N×8×8 in 0..16, labels) of scikit-learn's digits.

    Read straight from the CSV that ships inside scikit-learn (importing
    ``sklearn.datasets`` costs seconds); ``load_digits`` is the fallback.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # seconds to import: the fallback only

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def _load_digits(*, seed: int, val_fraction: float, limit: int | None) -> DatasetSplits:
    pixels, targets = _digits_arrays()
    images = torch.from_numpy(pixels / 16.0).unsqueeze(1)
    labels = torch.from_numpy(targets)
    order = _seeded_permutation(len(labels), 1_000_003)  # fixed test split, whatever the seed
    n_test = round(len(labels) * 0.2)
    test_idx, rest_idx = order[:n_test].sort().values, order[n_test:].sort().values
    test_x, test_y = _subset(images[test_idx], labels[test_idx], limit, seed)
    rest_x, rest_y = _subset(images[rest_idx], labels[rest_idx], limit, seed)
    train_x, train_y, val_x, val_y = _carve_validation(
        rest_x, rest_y, seed=seed, val_fraction=val_fraction
    )
    names = [str(i) for i in range(10)]
    return _normalised("digits", train_x, train_y, val_x, val_y, test_x, test_y, class_names=names)


def _load_synthetic(*, seed: int, val_fraction: float, limit: int | None) -> DatasetSplits:
    """Four classes of noisy class-specific patterns (learnable in a few steps)."""
    generator = torch.Generator().manual_seed(12345)
    prototypes = torch.rand(4, 3, 16, 16, generator=generator)
    n = limit or 400

    def make(count: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed * 1000 + offset)
        labels = torch.randint(0, 4, (count,), generator=g)
        noise = 0.35 * torch.randn(count, 3, 16, 16, generator=g)
        return (prototypes[labels] + noise).clamp(0, 1), labels

    x, y = make(n, 1)
    test_x, test_y = make(max(10, n // 4), 2)
    train_x, train_y, val_x, val_y = _carve_validation(x, y, seed=seed, val_fraction=val_fraction)
    names = ["a", "b", "c", "d"]
    return _normalised(
        "synthetic", train_x, train_y, val_x, val_y, test_x, test_y, class_names=names
    )


# ----------------------------------------------------------------------------------------------
# CIFAR-10


def _candidate_dirs(root: str | os.PathLike[str] | None) -> list[Path]:
    dirs: list[Path] = []
    if root is not None:
        dirs.append(Path(root).expanduser())
    if os.environ.get("AUTOCOMPRESS_DATA"):
        dirs.append(Path(os.environ["AUTOCOMPRESS_DATA"]).expanduser())
    dirs.append(Path.cwd() / ".data")
    dirs.append(Path.cwd().parent / "shared" / "datasets")
    repo = Path(__file__).resolve().parents[2]
    dirs.append(repo / ".data")
    dirs.append(repo.parent / "shared" / "datasets")
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def _load_cifar10(
    root: str | os.PathLike[str] | None, *, seed: int, val_fraction: float, limit: int | None
) -> DatasetSplits:
    dirs = _candidate_dirs(root)
    for d in dirs:
        if (d / "cifar-10-batches-py").is_dir():
            return _load_cifar10_torchvision(d, seed=seed, val_fraction=val_fraction, limit=limit)
    for d in dirs:
        for candidate in (d / "cifar10", d / CIFAR10_ARCHIVE):
            if candidate.exists():
                raw = _read_image_source(candidate, limit=limit, seed=seed)
                return _splits_from_raw("cifar10", raw, seed=seed, val_fraction=val_fraction)
    download_root = Path(root) if root is not None else _cache_dir()
    try:
        import torchvision  # seconds to import: only to download CIFAR-10

        torchvision.datasets.CIFAR10(str(download_root), train=True, download=True)
        torchvision.datasets.CIFAR10(str(download_root), train=False, download=True)
    except Exception as exc:  # no network: say where we looked
        looked = ", ".join(str(d) for d in dirs)
        raise ConfigError(
            f"CIFAR-10 not found (looked for cifar-10-batches-py/, cifar10/ and {CIFAR10_ARCHIVE} "
            f"in {looked}) and the download failed: {type(exc).__name__}: {exc}",
            hint="Pass root=... / set AUTOCOMPRESS_DATA to a folder holding cifar10-jpeg.tar.gz.",
        ) from None
    return _load_cifar10_torchvision(
        download_root, seed=seed, val_fraction=val_fraction, limit=limit
    )


def _load_cifar10_torchvision(
    root: Path, *, seed: int, val_fraction: float, limit: int | None
) -> DatasetSplits:
    import torchvision  # seconds to import: only for torchvision's CIFAR-10 files

    parts = []
    for train in (True, False):
        ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        y = torch.tensor(ds.targets, dtype=torch.int64)
        parts.append(_subset(x, y, limit, seed))
    raw = _RawImages(parts[0][0], parts[0][1], parts[1][0], parts[1][1], tuple(ds.classes))
    return _splits_from_raw("cifar10", raw, seed=seed, val_fraction=val_fraction)


# ----------------------------------------------------------------------------------------------
# image folders and archives


@dataclass(frozen=True)
class _RawImages:
    train_images: torch.Tensor  # uint8 N×C×H×W
    train_labels: torch.Tensor
    test_images: torch.Tensor | None
    test_labels: torch.Tensor | None
    class_names: tuple[str, ...]
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None


def _splits_from_raw(
    name: str, raw: _RawImages, *, seed: int, val_fraction: float, stratified: bool = False
) -> DatasetSplits:
    x = raw.train_images.float().div_(255.0)
    y = raw.train_labels
    if raw.test_images is None or raw.test_labels is None:
        if stratified:
            test_idx, rest_idx = stratified_split(y, 0.2, 1_000_003)
        else:
            order = _seeded_permutation(len(y), 1_000_003)
            n_test = max(1, round(len(y) * 0.2))
            test_idx, rest_idx = order[:n_test].sort().values, order[n_test:].sort().values
        test_x, test_y, x, y = x[test_idx], y[test_idx], x[rest_idx], y[rest_idx]
    else:
        test_x, test_y = raw.test_images.float().div_(255.0), raw.test_labels
    if raw.val_images is not None and raw.val_labels is not None:
        train_x, train_y = x, y
        val_x, val_y = raw.val_images.float().div_(255.0), raw.val_labels
    else:
        train_x, train_y, val_x, val_y = _carve_validation(
            x, y, seed=seed, val_fraction=val_fraction, stratified=stratified
        )
    return _normalised(
        name, train_x, train_y, val_x, val_y, test_x, test_y, class_names=raw.class_names
    )


def _cache_dir() -> Path:
    base = os.environ.get("AUTOCOMPRESS_CACHE")
    path = Path(base).expanduser() if base else Path.home() / ".cache" / "autocompress"
    return path / "datasets"


def _source_fingerprint(path: Path) -> str:
    path = path.resolve()
    if path.is_file():
        stat = path.stat()
        key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    else:
        count, size, newest = 0, 0, 0
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                st = os.stat(os.path.join(dirpath, f))
                count, size, newest = count + 1, size + st.st_size, max(newest, st.st_mtime_ns)
        key = f"{path}|{count}|{size}|{newest}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _read_image_source(
    path: Path, *, limit: int | None, seed: int, size: tuple[int, int] | None = None
) -> _RawImages:
    """Decoded uint8 images of an ImageFolder directory or archive, cached on disk."""
    tag = f"v{_CACHE_VERSION}-{_source_fingerprint(path)}-limit{limit}-seed{seed if limit else 0}"
    if size is not None:
        tag += f"-{size[0]}x{size[1]}"
    cache_file = _cache_dir() / f"{path.name.replace('.', '_')}-{tag}.pt"
    if cache_file.is_file():
        try:
            data = torch.load(cache_file, weights_only=True)
            return _RawImages(
                data["train_images"],
                data["train_labels"],
                data.get("test_images"),
                data.get("test_labels"),
                tuple(data["class_names"]),
                data.get("val_images"),
                data.get("val_labels"),
            )
        except Exception:  # a broken cache file is rebuilt
            cache_file.unlink(missing_ok=True)
    raw = _decode_image_source(path, limit=limit, seed=seed, size=size)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
    payload = {
        "train_images": raw.train_images,
        "train_labels": raw.train_labels,
        "class_names": list(raw.class_names),
    }
    if raw.test_images is not None:
        payload["test_images"] = raw.test_images
        payload["test_labels"] = raw.test_labels
    if raw.val_images is not None:
        payload["val_images"] = raw.val_images
        payload["val_labels"] = raw.val_labels
    try:
        torch.save(payload, tmp)
        os.replace(tmp, cache_file)
    except (OSError, RuntimeError):  # a cache that cannot be written only costs a re-decode
        tmp.unlink(missing_ok=True)
    return raw


def _list_members(path: Path) -> tuple[dict[str, bytes] | None, list[str]]:
    """Image member paths (relative, '/'-separated) and, for archives, their bytes."""
    if path.is_dir():
        members = [
            str(p.relative_to(path)).replace(os.sep, "/")
            for p in path.rglob("*")
            if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file()
        ]
        return None, sorted(members)
    if not tarfile.is_tarfile(path):
        raise ConfigError(f"{str(path)!r} is neither a folder nor a .tar/.tar.gz archive")
    blobs: dict[str, bytes] = {}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            if member.isfile() and Path(member.name).suffix.lower() in _IMAGE_SUFFIXES:
                handle = tar.extractfile(member)
                if handle is not None:
                    blobs[member.name] = handle.read()
    return blobs, sorted(blobs)


def _layout(members: list[str], source: Path) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Group members as split -> [(member, class)]; returns the class names too."""
    if not members:
        raise ConfigError(f"no images found in {str(source)!r} (expected <split>/<class>/<image>)")
    parts = [m.split("/") for m in members]
    depth = min(len(p) for p in parts)
    # strip a common leading folder (e.g. "cifar10/") while it is not a split name
    while depth >= 3 and len({p[0] for p in parts}) == 1 and parts[0][0] not in ("train", "test"):
        parts = [p[1:] for p in parts]
        depth -= 1
    splits: dict[str, list[tuple[str, str]]] = {}
    if depth >= 3 and {p[-3] for p in parts} & {"train", "test", "val"}:
        for member, p in zip(members, parts, strict=True):
            splits.setdefault(p[-3], []).append((member, p[-2]))
        if "test" not in splits and "val" in splits:
            splits["test"] = splits.pop("val")
        if "train" not in splits:
            raise ConfigError(f"{str(source)!r} has no train/ folder")
    elif depth >= 2:
        splits["train"] = [(m, p[-2]) for m, p in zip(members, parts, strict=True)]
    else:
        raise ConfigError(f"images in {str(source)!r} are not in <class>/ folders")
    classes = sorted({c for items in splits.values() for _, c in items})
    return splits, classes


_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def _decode_image_source(
    path: Path, *, limit: int | None, seed: int, size: tuple[int, int] | None = None
) -> _RawImages:
    from PIL import Image  # Pillow loads only for image datasets

    blobs, members = _list_members(path)
    splits, classes = _layout(members, path)
    class_index = {c: i for i, c in enumerate(classes)}
    picked: dict[str, list[tuple[str, str]]] = {}
    for split, items in splits.items():
        if limit is not None and limit < len(items):
            keep = _seeded_permutation(len(items), seed + 7919)[:limit].sort().values.tolist()
            items = [items[i] for i in keep]
        picked[split] = items

    def read(member: str) -> Image.Image:
        data = blobs[member] if blobs is not None else (path / member).read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if image.mode in _GRAY_MODES:
                    return image.convert("L")
                return image.convert("RGB")
        except Exception as exc:
            raise ConfigError(
                f"image {member!r} in {str(path)!r} cannot be decoded: {type(exc).__name__}: {exc}"
            ) from None

    images_by_split: dict[str, list[Image.Image]] = {}
    for split, items in picked.items():
        with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
            images_by_split[split] = list(pool.map(read, [m for m, _ in items], chunksize=256))
    every = [im for ims in images_by_split.values() for im in ims]
    mode = "RGB" if any(im.mode == "RGB" for im in every) else "L"
    if size is None:
        sizes: dict[tuple[int, int], int] = {}
        for im in every:
            sizes[(im.height, im.width)] = sizes.get((im.height, im.width), 0) + 1
        size = max(sizes, key=lambda s: (sizes[s], s))  # the most common (H, W)
    decoded: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for split, items in picked.items():
        arrays = [_eval_transform(im, size, mode) for im in images_by_split[split]]
        stacked = np.stack(arrays)
        if stacked.ndim == 3:
            stacked = stacked[:, :, :, None]
        images = torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor([class_index[c] for _, c in items], dtype=torch.int64)
        decoded[split] = (images, labels)
    train_images, train_labels = decoded["train"]
    test = decoded.get("test")
    val = decoded.get("val")
    return _RawImages(
        train_images,
        train_labels,
        test[0] if test else None,
        test[1] if test else None,
        tuple(classes),
        val[0] if val else None,
        val[1] if val else None,
    )


def _eval_transform(image: object, size: tuple[int, int], mode: str) -> np.ndarray:
    """torchvision's evaluation transform to ``size`` = (H, W): the short side resized to
    ``max(size) / 0.875``, then the center crop; an image already at ``size`` is kept."""
    from PIL import Image  # Pillow loads only for image datasets

    assert isinstance(image, Image.Image)
    image = image.convert(mode) if image.mode != mode else image
    h, w = size
    if (image.height, image.width) != (h, w):
        short = max(round(max(h, w) / EVAL_CROP_FRACTION), 1)
        scale = short / min(image.width, image.height)
        new_w = max(w, round(image.width * scale))
        new_h = max(h, round(image.height * scale))
        image = image.resize((new_w, new_h), Image.BILINEAR)
        left, top = (new_w - w) // 2, (new_h - h) // 2
        image = image.crop((left, top, left + w, top + h))
    return np.asarray(image)


__all__ = [
    "DATASET_NAMES",
    "DatasetSplits",
    "Split",
    "describe_dataset",
    "load_dataset",
    "stratified_sample",
    "stratified_split",
]
