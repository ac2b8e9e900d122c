"""Tests for wssweep.science.data: every dataset loads offline, in the real on-disk formats."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from wssweep.errors import InputError
from wssweep.science.data import Dataset, load_dataset, subset

# ------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any download attempt by mnist1d fail loudly."""
    import mnist1d.data
    import requests

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(mnist1d.data, "get_dataset", refuse)


def _rng_states() -> tuple[object, object, torch.Tensor]:
    return np.random.get_state(), random.getstate(), torch.get_rng_state()


def _assert_same_rng(before: tuple[object, object, torch.Tensor]) -> None:
    np_before, py_before, torch_before = before
    np_after, py_after, torch_after = _rng_states()
    # numpy's global RNG state (algorithm, keys, position, ...) is unchanged
    assert all(np.array_equal(a, b) for a, b in zip(np_before, np_after, strict=True))
    # python's random module state is unchanged
    assert py_before == py_after
    # torch's global CPU RNG state is unchanged
    assert torch.equal(torch_before, torch_after)


def _write_pickle(path: Path, entry: dict[bytes, object], protocol: int) -> None:
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=protocol)


def _cifar_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _write_cifar10(folder: Path, n_per_batch: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        entry = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": [(i + j) % 10 for j in range(n_per_batch)],
            b"data": _cifar_images(n_per_batch, i),
            b"filenames": [b"x.png"] * n_per_batch,
        }
        _write_pickle(folder / f"data_batch_{i}", entry, protocol=2)
    test = {b"labels": [9, 0], b"data": _cifar_images(2, 99), b"batch_label": b"testing batch"}
    _write_pickle(folder / "test_batch", test, protocol=2)


def _write_cifar100(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    train = {b"fine_labels": [0, 99, 42, 7], b"coarse_labels": [0, 1, 2, 3]}
    train[b"data"] = _cifar_images(4, 1)
    _write_pickle(folder / "train", train, protocol=3)
    test = {b"fine_labels": [5, 98], b"coarse_labels": [0, 1], b"data": _cifar_images(2, 2)}
    _write_pickle(folder / "test", test, protocol=3)


# ------------------------------------------------------------------------------------------------
# mnist1d


def test_mnist1d_generates_caches_and_leaves_rngs_alone(tmp_path: Path, no_network: None) -> None:
    np.random.seed(123)
    random.seed(456)
    before = _rng_states()
    ds = load_dataset("mnist1d", cache_dir=str(tmp_path), num_samples=500)
    _assert_same_rng(before)
    # 500 generated examples are split 80/20, each of mnist1d's length 40
    assert ds.x_train.shape == (400, 40) and ds.x_test.shape == (100, 40)
    # inputs are float32 and labels int64
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    # ten digit classes, all present
    assert ds.num_classes == 10 and set(ds.y_train.tolist()) == set(range(10))
    # the per-example shape is the sequence length
    assert ds.input_shape == (40,)
    files = list(tmp_path.glob("*.npz"))
    # exactly one cache file, named by the generation args (num_samples, default seed 42)
    assert len(files) == 1 and "n500" in files[0].name and "seed42" in files[0].name
    # no temp file is left behind by the atomic write
    assert [p.name for p in tmp_path.iterdir()] == [files[0].name]

    again = load_dataset("mnist1d", cache_dir=str(tmp_path), num_samples=500)
    # the second load (from the cache) equals the first
    assert all(
        torch.equal(a, b)
        for a, b in [
            (ds.x_train, again.x_train),
            (ds.y_train, again.y_train),
            (ds.x_test, again.x_test),
            (ds.y_test, again.y_test),
        ]
    )


def test_mnist1d_reads_cache_without_regenerating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    first = load_dataset("mnist1d", cache_dir=str(tmp_path), num_samples=100, seed=3)
    import mnist1d.data

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(mnist1d.data, "make_dataset", refuse)
    second = load_dataset("mnist1d", cache_dir=str(tmp_path), num_samples=100, seed=3)
    # the cached arrays come back unchanged without calling make_dataset
    assert torch.equal(first.x_test, second.x_test)
    # an explicit seed is part of the cache file name
    assert any("seed3" in p.name for p in tmp_path.glob("*.npz"))


def test_mnist1d_default_cache_dir_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("WSSWEEP_CACHE", str(tmp_path / "cache"))
    load_dataset("mnist1d", num_samples=50)
    # without cache_dir the arrays are cached under $WSSWEEP_CACHE
    assert len(list((tmp_path / "cache").glob("mnist1d_*.npz"))) == 1


def test_digits_shapes_and_range() -> None:
    before = _rng_states()
    ds = load_dataset("digits")
    _assert_same_rng(before)
    # scikit-learn's 1797 digits split 80/20 into 8×8 = 64 features
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    # pixels are scaled from 0..16 into [0, 1]
    assert float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) == 1.0
    # ten classes, int64 labels
    assert ds.num_classes == 10 and ds.y_test.dtype == torch.int64
    # the split is the same on every call
    assert torch.equal(ds.x_test, load_dataset("digits").x_test)
    # num_samples caps the training set only
    assert len(load_dataset("digits", num_samples=100).y_train) == 100


# ------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 / SVHN in their real file formats


@pytest.mark.parametrize("use_parent", [False, True])
def test_cifar10_pickle_batches(tmp_path: Path, use_parent: bool) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(folder)
    ds = load_dataset("cifar10", root=str(tmp_path if use_parent else folder))
    # five batches of 3 training images and 2 test images, as (N, 3, 32, 32) float32
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (2, 3, 32, 32)
    # float32 inputs, int64 labels
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    # ten classes
    assert ds.num_classes == 10
    # labels are read in batch order
    assert ds.y_train[:3].tolist() == [1, 2, 3] and ds.y_test.tolist() == [9, 0]
    raw = _cifar_images(3, 1)[0].reshape(3, 32, 32).astype(np.float32)
    # pixels are normalized per channel with mean 0.5, std 0.5 after scaling to [0, 1]
    assert torch.allclose(ds.x_train[0], torch.from_numpy((raw / 255 - 0.5) / 0.5))
    # so every value lies in [-1, 1]
    assert float(ds.x_train.min()) >= -1.0 and float(ds.x_train.max()) <= 1.0


@pytest.mark.parametrize("use_parent", [False, True])
def test_cifar100_pickle_files(tmp_path: Path, use_parent: bool) -> None:
    folder = tmp_path / "cifar-100-python"
    _write_cifar100(folder)
    ds = load_dataset("cifar100", root=str(tmp_path if use_parent else folder))
    # one train and one test pickle, images as (N, 3, 32, 32)
    assert ds.x_train.shape == (4, 3, 32, 32) and ds.x_test.shape == (2, 3, 32, 32)
    # fine labels are used, with 100 classes
    assert ds.y_train.tolist() == [0, 99, 42, 7] and ds.num_classes == 100
    raw = _cifar_images(2, 2)[1].reshape(3, 32, 32).astype(np.float32)
    # the same 0.5/0.5 normalization as CIFAR-10
    assert torch.allclose(ds.x_test[1], torch.from_numpy(raw / 127.5 - 1.0), atol=1e-6)


def test_svhn_mat_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, size=(32, 32, 3, 4), dtype=np.uint8)
    y_train = np.array([[1], [10], [5], [9]], dtype=np.uint8)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x_train, "y": y_train})
    x_test = rng.integers(0, 256, size=(32, 32, 3, 2), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x_test, "y": np.array([[10], [3]])})
    ds = load_dataset("svhn", root=str(tmp_path))
    # 32×32×3×N is transposed to (N, 3, 32, 32)
    assert ds.x_train.shape == (4, 3, 32, 32) and ds.x_test.shape == (2, 3, 32, 32)
    # label 10 (the digit 0) becomes 0, the others are kept
    assert ds.y_train.tolist() == [1, 0, 5, 9] and ds.y_test.tolist() == [0, 3]
    # int64 labels, 10 classes
    assert ds.y_train.dtype == torch.int64 and ds.num_classes == 10
    expected = torch.from_numpy(x_train[:, :, :, 2].transpose(2, 0, 1).astype(np.float32))
    # pixels keep their position and channel and get the 0.5/0.5 normalization
    assert torch.allclose(ds.x_train[2], expected / 127.5 - 1.0, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("cifar10", ["data_batch_1", "data_batch_5", "test_batch", "cifar-10-batches-py"]),
        ("cifar100", ["train", "test", "cifar-100-python"]),
        ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
    ],
)
@pytest.mark.parametrize("kind", ["missing", "file", "empty_dir"])
def test_bad_root_names_path_and_files(
    tmp_path: Path, name: str, files: list[str], kind: str
) -> None:
    root = tmp_path / "data_here"
    if kind == "file":
        root.write_text("not a directory")
    elif kind == "empty_dir":
        root.mkdir()
        (root / files[0]).write_bytes(b"")  # one file present is not enough
    with pytest.raises(InputError) as info:
        load_dataset(name, root=str(root))
    message = str(info.value)
    # the error is reported on data.root
    assert info.value.key == "data.root"
    # the message names the path given
    assert str(root) in message
    # and every file (and folder) that was expected
    assert all(f in message for f in files)


def test_root_required_for_file_datasets() -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("cifar10")
    # no root at all is a programmer's error (the schema requires data.root first)
    assert "root" in str(info.value)


# ------------------------------------------------------------------------------------------------
# synthetic_cifar


def test_synthetic_cifar_shape_determinism_and_rngs() -> None:
    before = _rng_states()
    ds = load_dataset("synthetic_cifar", num_samples=600)
    _assert_same_rng(before)
    # CIFAR-shaped float32 images, one sixth held out for test
    assert ds.x_train.shape == (500, 3, 32, 32) and ds.x_test.shape == (100, 3, 32, 32)
    # ten classes, int64 labels within range
    assert ds.num_classes == 10 and ds.y_train.dtype == torch.int64
    # every label is a valid class index
    assert int(ds.y_train.min()) >= 0 and int(ds.y_train.max()) <= 9
    again = load_dataset("synthetic_cifar", num_samples=600)
    # the fixed seed gives identical data on every call
    assert torch.equal(ds.x_train, again.x_train) and torch.equal(ds.y_test, again.y_test)
    # another seed gives other data
    assert not torch.equal(
        ds.x_train, load_dataset("synthetic_cifar", num_samples=600, seed=1).x_train
    )


def test_synthetic_cifar_is_learnable() -> None:
    ds = load_dataset("synthetic_cifar", num_samples=1200, kwargs={"noise": 1.0, "max_shift": 0})
    means = torch.stack([ds.x_train[ds.y_train == c].mean(0) for c in range(10)]).flatten(1)
    predicted = torch.cdist(ds.x_test.flatten(1), means).argmin(1)
    # a nearest-class-mean classifier is far above chance (10%)
    assert (predicted == ds.y_test).float().mean() > 0.5


def test_synthetic_cifar_default_size() -> None:
    ds = load_dataset("synthetic_cifar")
    # the default is 5000 training and 1000 test images
    assert len(ds.y_train) == 5000 and len(ds.y_test) == 1000


# ------------------------------------------------------------------------------------------------
# custom loaders


def my_loader(n: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A custom loader returning numpy arrays as a tuple."""
    x = np.arange(n * 5, dtype=np.float64).reshape(n, 5)
    y = np.arange(n) % 3
    return x, y, x[:2], y[:2]


def my_dataset_loader() -> Dataset:
    """A custom loader returning a Dataset."""
    x = torch.zeros(4, 2, 3)
    return Dataset("mine", x, torch.tensor([0, 1, 2, 3]), x[:1], torch.tensor([1]), 7)


def my_dict_loader() -> dict[str, object]:
    """A custom loader returning a dict with its own num_classes."""
    return {
        "x_train": torch.ones(3, 4),
        "y_train": [0, 1, 1],
        "x_test": torch.ones(1, 4),
        "y_test": [0],
        "num_classes": 5,
    }


def bad_length_loader() -> tuple[torch.Tensor, ...]:
    """Labels shorter than the inputs."""
    return torch.zeros(4, 3), torch.tensor([0, 1]), torch.zeros(1, 3), torch.tensor([0])


def float_label_loader() -> tuple[torch.Tensor, ...]:
    """Labels that are not integers."""
    return torch.zeros(2, 3), torch.tensor([0.5, 1.0]), torch.zeros(1, 3), torch.tensor([0])


def bad_shape_loader() -> tuple[torch.Tensor, ...]:
    """Train and test examples of different shapes."""
    return torch.zeros(2, 3), torch.tensor([0, 1]), torch.zeros(1, 4), torch.tensor([0])


def not_data_loader() -> str:
    """Returns something that is not data at all."""
    return "nope"


def test_custom_tuple_loader() -> None:
    ds = load_dataset("custom", loader="tests.science.test_data:my_loader", kwargs={"n": 6})
    # kwargs reach the loader and arrays become tensors
    assert ds.x_train.shape == (6, 5) and ds.x_test.shape == (2, 5)
    # inputs are converted to float32 and labels to int64
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    # num_classes is inferred as the largest label + 1
    assert ds.num_classes == 3


def test_custom_dataset_and_dict_loaders() -> None:
    ds = load_dataset("custom", loader="tests.science.test_data:my_dataset_loader")
    # a returned Dataset keeps its name, shape and num_classes
    assert ds.name == "mine" and ds.input_shape == (2, 3) and ds.num_classes == 7
    dd = load_dataset("custom", loader="tests.science.test_data:my_dict_loader")
    # a dict may set num_classes explicitly
    assert dd.num_classes == 5 and dd.y_train.tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    "loader",
    [
        "tests.science.test_data:no_such_function",
        "tests.science.no_such_module:my_loader",
        "tests.science.test_data:bad_length_loader",
        "tests.science.test_data:float_label_loader",
        "tests.science.test_data:bad_shape_loader",
        "tests.science.test_data:not_data_loader",
    ],
)
def test_custom_bad_loader(loader: str) -> None:
    with pytest.raises(InputError) as info:
        load_dataset("custom", loader=loader)
    # a bad path or a bad result is reported on data.loader
    assert info.value.key == "data.loader"
    # naming the loader that was given
    assert loader in str(info.value)


def test_unknown_name() -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    # a programmer's error (the schema refuses the name first), listing the known names
    assert "synthetic_cifar" in str(info.value)


def test_subset_takes_first_examples() -> None:
    ds = load_dataset("digits")
    small = subset(ds, 10, None)
    # the first 10 training examples, in order
    assert torch.equal(small.x_train, ds.x_train[:10]) and torch.equal(
        small.y_train, ds.y_train[:10]
    )
    # the test set is untouched when n_test is None
    assert torch.equal(small.x_test, ds.x_test)
    # asking for more than there is keeps everything
    assert len(subset(ds, None, 10**6).y_test) == len(ds.y_test)
    with pytest.raises(ValueError):
        # a negative size is a programmer's error (the schema refuses it first)
        subset(ds, -1, None)


def test_holdout_carves_a_disjoint_validation_split() -> None:
    from wssweep.science.data import Dataset, holdout

    n = 50
    x = torch.arange(n, dtype=torch.float32)[:, None]  # each example's index, to tell them apart
    ds = Dataset("ids", x, torch.arange(n) % 2, x[:5], torch.zeros(5, dtype=torch.long), 2)
    kept, x_val, y_val = holdout(ds, 0.2, torch.Generator().manual_seed(3))
    train_ids, val_ids = set(kept.x_train[:, 0].tolist()), set(x_val[:, 0].tolist())
    # a fifth is held out, disjoint from the rest, and together they are the training set
    assert len(val_ids) == 10 and not train_ids & val_ids and train_ids | val_ids == set(range(n))
    # the kept examples keep their order; labels travel with their examples; test untouched
    assert kept.x_train[:, 0].tolist() == sorted(train_ids)
    assert torch.equal(y_val, x_val[:, 0].long() % 2) and torch.equal(kept.x_test, ds.x_test)
    # the same generator seed gives the same split
    again = holdout(ds, 0.2, torch.Generator().manual_seed(3))[1]
    assert torch.equal(again, x_val)
