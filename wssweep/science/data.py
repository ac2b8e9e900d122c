"""Datasets for warm-start studies, loaded as in-memory tensors (plain PyTorch/NumPy).

Every loader returns a :class:`Dataset`: ``x`` float32 with a leading example axis, ``y`` int64
class labels in ``[0, num_classes)``. Nothing here downloads anything:

* ``mnist1d`` (the embedded default) is *generated* locally with ``mnist1d.data.make_dataset``
  and cached as ``.npz``; ``digits`` ships inside scikit-learn; ``synthetic_cifar`` is generated
  from a fixed seed.
* ``cifar10``, ``cifar100`` and ``svhn`` are read from files the user already has under ``root``.
* ``custom`` calls a user function named by an import path ``'package.module:function'``.

The data itself is fixed: ``seed`` here is the seed of the data's *generation* (or of the
train/test split where a dataset ships none), not a trial seed. Trials vary their data order and
initialisation elsewhere, so a sweep compares runs on identical data.

Bad user input (unknown name, missing files, a broken loader) raises
:class:`wssweep.errors.InputError`, which the CLI turns into exit status 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import typing
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wssweep.config import SYNTHETIC_OPTIONS, DataConfig, mnist1d_args
from wssweep.errors import InputError
from wssweep.files import atomic_write
from wssweep.science.imports import import_object

__all__ = ["DATASET_NAMES", "Dataset", "default_cache_dir", "holdout", "load_dataset", "subset"]

DATASET_NAMES: tuple[str, ...] = typing.get_args(DataConfig.model_fields["name"].annotation)

# mnist1d's own default generation seed: with it (and the default args) the generated data is the
# published MNIST-1D dataset, 4000 train / 1000 test examples of length 40.
MNIST1D_DEFAULT_SEED = 42
# Seed of the stratified 80/20 train/test split of scikit-learn's digits (which ships no split).
DIGITS_DEFAULT_SEED = 0
# Fraction of scikit-learn's 1797 digits held out for test (stratified): 1437 train / 360 test.
DIGITS_TEST_FRACTION = 0.2
# Fixed seed of synthetic_cifar, so benchmarks on machines with no data see the same images.
SYNTHETIC_DEFAULT_SEED = 0
# Total synthetic_cifar examples by default; one sixth is held out: 5000 train / 1000 test.
SYNTHETIC_DEFAULT_NUM_SAMPLES = 6000
# Per-channel mean and std applied to images scaled to [0, 1] (as in Ash & Adams' warm-starting
# code): maps pixel values to [-1, 1].
IMAGE_MEAN = 0.5
IMAGE_STD = 0.5
# Bump when the cached mnist1d arrays change meaning, so old cache files are not reused.
_CACHE_VERSION = 1

_CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
_CIFAR100_FILES = ("train", "test")
_SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


@dataclass
class Dataset:
    """A train/test pair of tensors: ``x`` float32 ``(N, *input_shape)``, ``y`` int64 ``(N,)``.

    Example:
        >>> ds = load_dataset("digits")
        >>> ds.input_shape, ds.num_classes, ds.x_train.dtype, ds.y_train.dtype
        ((64,), 10, torch.float32, torch.int64)
    """

    name: str
    x_train: torch.Tensor  # float32, (N_train, *input_shape)
    y_train: torch.Tensor  # int64, (N_train,), values in [0, num_classes)
    x_test: torch.Tensor  # float32, (N_test, *input_shape)
    y_test: torch.Tensor  # int64, (N_test,)
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, without the leading example axis."""
        return tuple(self.x_train.shape[1:])


def default_cache_dir() -> Path:
    """Where generated data is cached: ``$WSSWEEP_CACHE`` if set, else ``~/.cache/wssweep``.

    Example:
        >>> default_cache_dir().name in {"wssweep", Path(os.environ.get("WSSWEEP_CACHE", "x")).name}
        True
    """
    env = os.environ.get("WSSWEEP_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/wssweep").expanduser()


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    cache_dir: str | None = None,
    seed: int | None = None,
    num_samples: int | None = None,
    loader: str | None = None,
    kwargs: dict[str, Any] | None = None,
) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASET_NAMES`) as in-memory tensors.

    Args:
        name: ``mnist1d``, ``digits``, ``cifar10``, ``cifar100``, ``svhn``, ``synthetic_cifar``
            or ``custom``.
        root: for ``cifar10``/``cifar100``: the folder holding the python-pickle batches, or its
            parent holding ``cifar-10-batches-py``/``cifar-100-python``; for ``svhn``: the folder
            holding ``train_32x32.mat`` and ``test_32x32.mat``. Ignored by the others.
        cache_dir: where generated ``mnist1d`` arrays are cached (default
            :func:`default_cache_dir`).
        seed: generation seed of the data, not a trial seed; ``None`` means each dataset's fixed
            default: ``mnist1d`` 42 (mnist1d's own default, i.e. the published dataset),
            ``digits`` 0 (seed of its stratified 80/20 split), ``synthetic_cifar`` 0. Files read
            from ``root`` ship their split and ignore it.
        num_samples: for generated sets (``mnist1d``, ``synthetic_cifar``) the total number of
            examples generated (default 5000 → 4000/1000, and 6000 → 5000/1000); for ``digits``,
            CIFAR and SVHN it keeps only the first ``num_samples`` training examples (test
            unchanged). Ignored by ``custom``.
        loader: for ``custom``: import path ``'package.module:function'`` of a function returning
            a :class:`Dataset`, a dict with ``x_train, y_train, x_test, y_test`` (and optionally
            ``num_classes``), or a tuple ``(x_train, y_train, x_test, y_test)`` of tensors or
            arrays. ``num_classes`` defaults to the largest label + 1.
        kwargs: for ``custom``: keyword arguments of the loader; for ``mnist1d``: overrides of
            ``mnist1d.data.get_dataset_args()`` (e.g. ``{"iid_noise_scale": 0.05}``); for
            ``synthetic_cifar``: ``noise`` (pixel noise std, default 3.0) and ``max_shift``
            (largest random translation in pixels, default 8). Not accepted by the others.

    Raises:
        InputError: a root without the expected files, files that are not the dataset, a custom
            loader that cannot be imported or returns no valid data. ``wssweep validate`` loads
            the data once, so it reports these before a sweep starts (wssweep.preflight).

    Example:
        >>> ds = load_dataset("digits", num_samples=100)
        >>> ds.x_train.shape, ds.x_test.shape, float(ds.x_train.max()) <= 1.0
        (torch.Size([100, 64]), torch.Size([360, 64]), True)
    """
    # The names, kwargs and sizes a user writes are checked by the schema (wssweep.config);
    # what is checked here is only what the schema cannot see: files, and what user code returns.
    if name not in DATASET_NAMES:
        raise ValueError(f"name must be one of {DATASET_NAMES}, got {name!r}")
    kwargs = dict(kwargs or {})

    if name == "mnist1d":
        return _load_mnist1d(cache_dir, seed, num_samples, kwargs)
    if name == "synthetic_cifar":
        return _synthetic_cifar(seed, num_samples, kwargs)
    if name == "custom":
        return _load_custom(loader, kwargs)
    if name == "digits":
        ds = _load_digits(seed)
    elif name == "cifar10":
        ds = _load_cifar(root, cifar100=False)
    elif name == "cifar100":
        ds = _load_cifar(root, cifar100=True)
    else:
        ds = _load_svhn(root)
    return subset(ds, num_samples, None) if num_samples is not None else ds


def subset(ds: Dataset, n_train: int | None, n_test: int | None) -> Dataset:
    """Keep the first ``n_train`` training and first ``n_test`` test examples (``None``: all).

    Deterministic (no shuffling); asking for more examples than there are keeps them all.

    Example:
        >>> small = subset(load_dataset("digits"), 50, 20)
        >>> len(small.y_train), len(small.y_test), small.num_classes
        (50, 20, 10)
    """
    for n in (n_train, n_test):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"n_train and n_test must be integers >= 0 or None, got {n!r}")
    return replace(
        ds,
        x_train=ds.x_train if n_train is None else ds.x_train[:n_train],
        y_train=ds.y_train if n_train is None else ds.y_train[:n_train],
        x_test=ds.x_test if n_test is None else ds.x_test[:n_test],
        y_test=ds.y_test if n_test is None else ds.y_test[:n_test],
    )


def holdout(ds: Dataset, fraction: float,
            generator: torch.Generator) -> tuple[Dataset, torch.Tensor, torch.Tensor]:
    """Hold out a random ``fraction`` of the training examples as a validation split.

    Returns the dataset without them (the rest keep their order) and the held-out ``(x, y)``;
    at least one example is held out and at least one kept. The test set is untouched.

    Example:
        >>> split = torch.Generator().manual_seed(0)
        >>> ds, x_val, y_val = holdout(load_dataset("digits"), 0.1, split)
        >>> len(ds.y_train), len(y_val), len(ds.y_test)
        (1293, 144, 360)
    """
    n = len(ds.y_train)
    if n < 2 or not 0 < fraction < 1:
        raise ValueError(f"need 2+ training examples and a fraction in (0, 1), got {n}, {fraction}")
    n_val = min(max(1, round(fraction * n)), n - 1)
    order = torch.randperm(n, generator=generator).to(ds.y_train.device)
    val, keep = order[:n_val], order[n_val:].sort().values
    return (replace(ds, x_train=ds.x_train[keep], y_train=ds.y_train[keep]),
            ds.x_train[val], ds.y_train[val])


# ---------------------------------------------------------------------------------------------
# mnist1d: generated locally, cached as .npz


def _load_mnist1d(
    cache_dir: str | None, seed: int | None, num_samples: int | None, overrides: dict[str, Any]
) -> Dataset:
    args = mnist1d_args()
    args.update(overrides)
    if seed is not None:
        args["seed"] = seed
    elif "seed" not in overrides:
        args["seed"] = MNIST1D_DEFAULT_SEED
    if num_samples is not None:
        args["num_samples"] = num_samples

    # The name carries the args that usually change plus a hash of all of them.
    digest = hashlib.sha256(
        json.dumps({"v": _CACHE_VERSION, **args}, sort_keys=True, default=str).encode()
    ).hexdigest()[:12]
    directory = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    path = directory / f"mnist1d_n{args['num_samples']}_seed{args['seed']}_{digest}.npz"

    arrays = _read_npz(path)
    if arrays is None:
        arrays = _generate_mnist1d(args)
        _write_npz_atomic(path, arrays)
    return Dataset(
        name="mnist1d",
        x_train=torch.from_numpy(arrays["x_train"]),
        y_train=torch.from_numpy(arrays["y_train"]),
        x_test=torch.from_numpy(arrays["x_test"]),
        y_test=torch.from_numpy(arrays["y_test"]),
        num_classes=10,
    )


def _generate_mnist1d(args: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run ``mnist1d.data.make_dataset`` leaving the caller's global RNGs as they were."""
    import mnist1d.data
    from mnist1d.utils import ObjectView

    np_state = np.random.get_state()
    py_state = random.getstate()
    try:  # make_dataset seeds (and draws from) numpy's and python's global RNGs
        raw = mnist1d.data.make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {
        "x_train": np.ascontiguousarray(raw["x"], dtype=np.float32),
        "y_train": np.ascontiguousarray(raw["y"], dtype=np.int64),
        "x_test": np.ascontiguousarray(raw["x_test"], dtype=np.float32),
        "y_test": np.ascontiguousarray(raw["y_test"], dtype=np.int64),
    }


def _read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when there is no usable cache file."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # unreadable (e.g. truncated by a crash): regenerate and overwrite


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` via a temp file + ``os.replace``: readers never see half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as exc:  # a read-only cache only costs regeneration next time
        warnings.warn(f"could not cache generated data at {path}: {exc}", stacklevel=3)


# ---------------------------------------------------------------------------------------------
# digits: ships inside scikit-learn


def _load_digits(seed: int | None) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)  # pixel counts 0..16 → [0, 1]
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x,
        y,
        test_size=DIGITS_TEST_FRACTION,
        stratify=y,
        random_state=DIGITS_DEFAULT_SEED if seed is None else seed,  # own RNG, globals untouched
    )
    return Dataset(
        name="digits",
        x_train=torch.from_numpy(np.ascontiguousarray(x_train)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_train)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_test)),
        num_classes=10,
    )


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python-pickle batches) and SVHN (.mat), read from root


def _find_root(root: str | None, files: tuple[str, ...], subdir: str | None, what: str) -> Path:
    """The folder under ``root`` holding all ``files`` (``root`` itself or ``root/subdir``)."""
    expected = f"a directory holding the {what} files {', '.join(files)}"
    if subdir is not None:
        expected += f" (or its parent, holding {subdir}/)"
    if root is None or not isinstance(root, str | os.PathLike):
        raise ValueError(f"root must be a path for {what}, got {root!r}")
    base = Path(root).expanduser()
    candidates = [base] if subdir is None else [base, base / subdir]
    for folder in candidates:
        if folder.is_dir() and all((folder / f).is_file() for f in files):
            return folder
    if not base.exists():
        expected += " (the path does not exist)"
    elif not base.is_dir():
        expected += " (the path is not a directory)"
    else:
        expected += " (some are missing)"
    raise InputError("data.root", expected, str(root))


def _normalize_images(x_uint8: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, 3, 32, 32)`` → float32, scaled to [0, 1] then normalised by mean/std 0.5."""
    x = torch.from_numpy(np.ascontiguousarray(x_uint8)).to(torch.float32)
    return x.div_(255.0).sub_(IMAGE_MEAN).div_(IMAGE_STD)


def _unpickle(path: Path) -> dict[bytes, Any]:
    with open(path, "rb") as f:
        # The batches are Python 2 pickles: load their str keys as bytes, as torchvision does.
        entry = pickle.load(f, encoding="bytes")
    if not isinstance(entry, dict):
        raise InputError("data.root", "a CIFAR python-pickle batch (a dict)", str(path))
    return {(k.encode() if isinstance(k, str) else k): v for k, v in entry.items()}


def _read_cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    entry = _unpickle(path)
    if b"data" not in entry or label_key not in entry:
        expected = f"a CIFAR batch with keys b'data' and {label_key!r}"
        raise InputError("data.root", expected, str(path))
    data = np.asarray(entry[b"data"], dtype=np.uint8)
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        expected = "a CIFAR batch: b'data' uint8 N×3072 with N labels"
        raise InputError("data.root", expected, str(path))
    return data.reshape(-1, 3, 32, 32), labels  # rows are R, G, B planes of 32×32


def _load_cifar(root: str | None, *, cifar100: bool) -> Dataset:
    if cifar100:  # one pickle of 50000 training images, one of 10000 test images
        what, files, label_key = "CIFAR-100", _CIFAR100_FILES, b"fine_labels"
        subdir = "cifar-100-python"
        name, classes = "cifar100", 100
    else:  # five pickles of 10000 training images, one of 10000 test images
        what, files, label_key = "CIFAR-10", _CIFAR10_FILES, b"labels"
        subdir = "cifar-10-batches-py"
        name, classes = "cifar10", 10
    train_files, test_file = files[:-1], files[-1]
    folder = _find_root(root, files, subdir, what + " python-version")
    parts = [_read_cifar_batch(folder / f, label_key) for f in train_files]
    x_test, y_test = _read_cifar_batch(folder / test_file, label_key)
    return Dataset(
        name=name,
        x_train=_normalize_images(np.concatenate([p[0] for p in parts])),
        y_train=torch.from_numpy(np.concatenate([p[1] for p in parts])),
        x_test=_normalize_images(x_test),
        y_test=torch.from_numpy(y_test),
        num_classes=classes,
    )


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except (OSError, ValueError) as exc:
        raise InputError("data.root", f"a readable SVHN .mat file ({exc})", str(path)) from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        expected = "an SVHN .mat file with 'X' 32×32×3×N and 'y' N×1"
        raise InputError("data.root", expected, str(path))
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if len(labels) != x.shape[3]:
        raise InputError("data.root", "an SVHN .mat file with as many labels as images", str(path))
    labels[labels == 10] = 0  # SVHN labels the digit 0 as 10
    return np.asarray(x, dtype=np.uint8).transpose(3, 2, 0, 1), labels  # → (N, 3, 32, 32)


def _load_svhn(root: str | None) -> Dataset:
    folder = _find_root(root, _SVHN_FILES, None, "SVHN (cropped digits, .mat)")
    x_train, y_train = _read_svhn(folder / "train_32x32.mat")
    x_test, y_test = _read_svhn(folder / "test_32x32.mat")
    return Dataset(
        name="svhn",
        x_train=_normalize_images(x_train),
        y_train=torch.from_numpy(y_train),
        x_test=_normalize_images(x_test),
        y_test=torch.from_numpy(y_test),
        num_classes=10,
    )


# ---------------------------------------------------------------------------------------------
# synthetic_cifar: CIFAR-shaped, learnable, from a fixed seed


def _synthetic_cifar(seed: int | None, num_samples: int | None, options: dict[str, Any]) -> Dataset:
    options = {**SYNTHETIC_OPTIONS, **options}
    noise = float(options["noise"])  # std of i.i.d. pixel noise; signal std ≈ 1
    max_shift = int(options["max_shift"])  # each image rolls by up to ±max_shift px
    total = SYNTHETIC_DEFAULT_NUM_SAMPLES if num_samples is None else num_samples
    n_test = total // 6  # default 6000 → 5000 train / 1000 test

    gen = torch.Generator().manual_seed(SYNTHETIC_DEFAULT_SEED if seed is None else seed)
    num_classes = 10
    # One smooth colour pattern per class: 3×4×4 Gaussian noise upsampled to 32×32, unit std.
    coarse = torch.randn(num_classes, 3, 4, 4, generator=gen)
    patterns = torch.nn.functional.interpolate(
        coarse, size=(32, 32), mode="bilinear", align_corners=False
    )
    patterns = patterns / patterns.std(dim=(1, 2, 3), keepdim=True)
    labels = torch.randint(0, num_classes, (total,), generator=gen)
    # Per-example contrast in [0.5, 1.5] and a random translation make it less than trivial.
    contrast = 0.5 + torch.rand(total, 1, 1, 1, generator=gen)
    x = patterns[labels] * contrast
    if max_shift > 0:
        shifts = torch.randint(-max_shift, max_shift + 1, (total, 2), generator=gen)
        for i in range(total):
            x[i] = torch.roll(x[i], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
    x = x + noise * torch.randn(x.shape, generator=gen)
    n_train = total - n_test
    return Dataset(
        name="synthetic_cifar",
        x_train=x[:n_train].contiguous(),
        y_train=labels[:n_train].to(torch.int64),
        x_test=x[n_train:].contiguous(),
        y_test=labels[n_train:].to(torch.int64),
        num_classes=num_classes,
    )


# ---------------------------------------------------------------------------------------------
# custom: a user function named by an import path


def _load_custom(loader: str, kwargs: dict[str, Any]) -> Dataset:
    fn = import_object(loader, "data.loader")
    result = fn(**kwargs)

    num_classes: Any = None
    name = "custom"
    if isinstance(result, Dataset):
        name, num_classes = result.name, result.num_classes
        parts: Any = (result.x_train, result.y_train, result.x_test, result.y_test)
    elif isinstance(result, Mapping):
        keys = ("x_train", "y_train", "x_test", "y_test")
        if not all(k in result for k in keys):
            expected = "a loader returning a dict with keys x_train, y_train, x_test, y_test"
            raise InputError("data.loader", expected, loader)
        parts = tuple(result[k] for k in keys)
        num_classes = result.get("num_classes")
    elif isinstance(result, tuple | list) and len(result) == 4:
        parts = tuple(result)
    else:
        expected = (
            "a loader returning a Dataset, a dict or a tuple (x_train, y_train, x_test, y_test);"
            f" it returned {type(result).__name__}"
        )
        raise InputError("data.loader", expected, loader)
    return _validated(name, *parts, num_classes=num_classes, loader=loader)


MAX_CLASSES = 1_000_000  # a custom dataset's classes at most (the model's last layer has one each)


def _validated(
    name: str,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    num_classes: Any,
    loader: str,
) -> Dataset:
    """Check and convert a loader's arrays; anything wrong raises InputError on data.loader."""

    def bad(problem: str) -> InputError:
        return InputError("data.loader", f"a loader whose data is valid ({problem})", loader)

    xs, ys = [], []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        try:
            x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
            y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise bad(f"x_{split}/y_{split} are not arrays: {exc}") from None
        if x.ndim < 2:
            raise bad(f"x_{split} must be (N, ...), at least 2-D, got shape {tuple(x.shape)}")
        if y.ndim != 1:
            raise bad(f"y_{split} must be 1-D (N,), got shape {tuple(y.shape)}")
        if len(x) != len(y):
            raise bad(f"x_{split} has {len(x)} examples but y_{split} has {len(y)}")
        if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
            raise bad(f"y_{split} must hold integer class labels, got dtype {y.dtype}")
        if x.dtype == torch.bool or x.is_complex():
            raise bad(f"x_{split} must be numeric, got dtype {x.dtype}")
        if len(y) and int(y.min()) < 0:
            raise bad(f"y_{split} has a negative label {int(y.min())}")
        xs.append(x.to(torch.float32).contiguous())
        ys.append(y.to(torch.int64).contiguous())
    if len(ys[0]) == 0:
        raise bad("the training set is empty")
    if len(ys[1]) == 0:
        raise bad("the test set is empty: every test accuracy would be 0 of 0")
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise bad(f"train examples {tuple(xs[0].shape[1:])} vs test {tuple(xs[1].shape[1:])}")
    largest = max(int(y.max()) for y in ys if len(y))
    if num_classes is None:
        num_classes = largest + 1
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise bad(f"num_classes must be an integer, got {num_classes!r}")
    if int(num_classes) <= largest:
        raise bad(f"num_classes={num_classes} but a label is {largest}")
    if not 2 <= int(num_classes) <= MAX_CLASSES:
        raise bad(f"labels 0..K-1 with 2 <= K <= {MAX_CLASSES}, got K={num_classes} (one class "
                  "leaves nothing to classify; the output layer has K units)")
    return Dataset(name, xs[0], ys[0], xs[1], ys[1], int(num_classes))
