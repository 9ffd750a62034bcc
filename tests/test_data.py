"""Datasets: built-ins, user files, teacher, splits, standardisation, and every refusal."""

import ast
import contextlib
import gzip
import os
import pathlib
import signal
import struct
import zipfile

import numpy as np
import pytest

import funcbp
from funcbp import data
from funcbp.data import idx

# --- built-ins ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "x_shape", "n_classes"),
    [("xor", (4, 2), 2), ("iris", (150, 4), 3), ("digits", (1797, 64), 10)],
)
def test_builtin_classification_sets(name, x_shape, n_classes):
    ds = data.load(name)
    assert ds.name == name and ds.x.shape == x_shape and ds.x.dtype == np.float32
    assert ds.y.shape == x_shape[:1] and ds.y.dtype == np.int32
    assert ds.n_classes == n_classes == ds.n_outputs and ds.n_features == x_shape[1]
    np.testing.assert_array_equal(np.unique(ds.y), np.arange(n_classes))


def test_builtin_values_are_the_known_ones():
    np.testing.assert_array_equal(data.load("xor").y, [0, 1, 1, 0])
    assert np.bincount(data.load("iris").y).tolist() == [50, 50, 50]
    digits = data.load("digits").x
    assert digits.min() == 0 and digits.max() == 16 and (digits == np.round(digits)).all()


def test_builtin_regression_is_deterministic_noisy_sine():
    ds = data.load("regression")
    assert ds.n_classes is None and ds.x.shape == (256, 1) and ds.y.shape == (256, 1)
    assert ds.y.dtype == np.float32 and ds.n_outputs == 1
    np.testing.assert_array_equal(ds.y, data.load("regression").y)
    noise = ds.y - np.sin(ds.x)
    assert 0.05 < noise.std() < 0.2 and abs(noise.mean()) < 0.05


def test_data_package_imports_neither_jax_nor_sklearn():
    # Loading data must stay numpy-only: a top-level jax import would slow every loader
    # and scikit-learn is only for tools/make_datasets.py.
    modules = sorted(pathlib.Path(data.__file__).parent.glob("*.py"))
    assert len(modules) >= 6  # the package's modules, not an empty glob
    for path in modules:
        tree = ast.parse(path.read_text())
        names = {
            alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names
        }
        names |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("jax", "jaxlib", "sklearn")}, path


# --- Dataset validation ------------------------------------------------------------

_X = np.arange(12.0).reshape(6, 2)
_LABELS = np.array([0, 1, 2, 0, 1, 2])


def _with(a, index, value):
    a = np.array(a, dtype=np.float64)
    a[index] = value
    return a


@pytest.mark.parametrize(
    ("x", "y", "n_classes", "message"),
    [
        (
            _with(_X, (3, 1), np.nan),
            _LABELS,
            3,
            r"x has non-finite values \(1 NaN, 0 inf\) in 1 row; the first is row 3",
        ),
        (
            _with(_X, ((1, 4), 0), np.inf),
            _LABELS,
            3,
            r"x has non-finite values \(0 NaN, 2 inf\) in 2 rows; the first is row 1",
        ),
        (
            _X,
            _with(_X[:, :1], 5, -np.inf),
            None,
            r"y has non-finite values \(0 NaN, 1 inf\).*row 5",
        ),
        (_X, _with(_LABELS, 2, np.nan), 3, r"y has non-finite values \(1 NaN"),
        (_X, _LABELS[:5], 3, r"x has 6 rows but y has shape \(5,\)"),
        (_X, np.ones((7, 1)), None, r"x has 6 rows but y has shape \(7, 1\)"),
        (
            _X,
            _with(_LABELS, 4, 3),
            3,
            r"label 3 at row 4 is out of range for 3 classes \(labels must lie in \[0, 2\]\)",
        ),
        (_X, _with(_LABELS, 1, -1), 3, r"label -1 at row 1 is out of range"),
        (_X, _with(_LABELS, 0, 0.5), 3, r"label 0.5 at row 0 is not a whole number"),
        (_X, _LABELS, 1, r"n_classes must be an integer >= 2"),
        (_X, _LABELS[:, None], 3, r"class labels y have shape \(6, 1\), expected \[n\]"),
        (_X, _LABELS * 0.5, None, r"regression targets y have shape \(6,\), expected \[n, n_out\]"),
        (np.zeros((0, 2)), np.zeros((0,)), 3, r"the data are empty \(x has shape \(0, 2\)\)"),
        (np.zeros((6, 0)), _LABELS, 3, r"the data are empty"),
        (_X[:, 0], _LABELS, 3, r"x has shape \(6,\), expected \[n, n_features\]; reshape"),
        (_X.astype(str), _LABELS, 3, r"x has dtype <U32, expected numbers"),
        (_with(_X, (0, 0), 1e300), _LABELS, 3, r"x has values beyond the float32 range"),
    ],
)
def test_dataset_refuses_bad_arrays(x, y, n_classes, message):
    with pytest.raises(ValueError, match=r"dataset 'bad': " + message):
        data.Dataset(x, y, n_classes, "bad")


def test_dataset_converts_dtypes():
    ds = data.Dataset(_X.astype(np.int64), _LABELS.astype(np.float64), 3, "ok")
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int32 and len(ds) == 6
    assert repr(ds) == "Dataset('ok', x [6, 2] float32, y [6] int32, n_classes=3)"


# --- check_fits ----------------------------------------------------------------------


def _net(sizes, cost):
    return funcbp.MLP(sizes, activation="tanh", cost=cost)


@pytest.mark.parametrize(
    ("ds", "sizes", "cost"),
    [
        (data.Dataset(_X, _LABELS, 3, "iris-like"), (2, 5, 3), "softmax_cross_entropy"),
        (data.Dataset(_X, np.eye(3)[_LABELS], None, "one-hot"), (2, 3), "softmax_cross_entropy"),
        (
            data.Dataset(_X, _LABELS[:, None] / 2, None, "probs"),
            (2, 1),
            "sigmoid_binary_cross_entropy",
        ),
        (data.Dataset(_X, np.ones((6, 2)), None, "reg"), (2, 4, 2), "mse"),
        ((_X, _LABELS), (2, 3), "softmax_cross_entropy"),
    ],
)
def test_check_fits_accepts_matching_data(ds, sizes, cost):
    data.check_fits(ds, _net(sizes, cost))


@pytest.mark.parametrize(
    ("ds", "sizes", "cost", "message"),
    [
        (
            data.Dataset(_X, _LABELS, 3, "d"),
            (4, 3),
            "softmax_cross_entropy",
            r"dataset 'd': x has 2 features but the network takes 4 inputs \(sizes \(4, 3\)\)",
        ),
        (
            data.Dataset(_X, _LABELS, 3, "d"),
            (2, 10),
            "softmax_cross_entropy",
            r"dataset 'd': the labels have 3 classes but the network has 10 outputs",
        ),
        (
            (_X, _LABELS + 1),
            (2, 3),
            "softmax_cross_entropy",
            r"check_fits: softmax_cross_entropy: label 3 is out of range for 3 classes",
        ),
        (
            (_X, _LABELS / 2),
            (2, 3),
            "softmax_cross_entropy",
            r"1-D targets must be integer class labels",
        ),
        (
            (_X, _LABELS[:, None] - 1.0),
            (2, 1),
            "sigmoid_binary_cross_entropy",
            r"targets must lie in \[0, 1\], got values in \[-1, 1\]",
        ),
        (
            data.Dataset(_X, _LABELS, 3, "d"),
            (2, 3),
            "mse",
            r"dataset 'd': mse: targets y have shape \(6,\), expected \(6, 3\)",
        ),
        (
            data.Dataset(_X, np.ones((6, 2)), None, "d"),
            (2, 1),
            "mse",
            r"mse: targets y have shape \(6, 2\), expected \(6, 1\)",
        ),
        (
            (_with(_X, (2, 0), np.nan), _LABELS),
            (2, 3),
            "softmax_cross_entropy",
            r"check_fits: x has non-finite values \(1 NaN, 0 inf\).*row 2",
        ),
        (
            (_X, _LABELS[:4]),
            (2, 3),
            "softmax_cross_entropy",
            r"check_fits: x has 6 rows but y has shape \(4,\)",
        ),
        ((_X,), (2, 3), "softmax_cross_entropy", r"data must be a Dataset or a pair \(x, y\)"),
    ],
)
def test_check_fits_names_the_mismatch(ds, sizes, cost, message):
    with pytest.raises(ValueError, match=message):
        data.check_fits(ds, _net(sizes, cost))


# --- teacher --------------------------------------------------------------------------


def test_teacher_is_deterministic_and_shaped():
    a = data.teacher(300, (5, 16, 4), seed=3)
    b = data.teacher(300, (5, 16, 4), seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.shape == (300, 5) and a.x.dtype == np.float32 and a.y.shape == (300,)
    assert a.n_classes == 4 and a.y.min() >= 0 and a.y.max() <= 3
    assert len(np.unique(a.y)) > 1  # the teacher is not constant
    assert not np.array_equal(a.y, data.teacher(300, (5, 16, 4), seed=4).y)
    # The teacher depends on seed and sizes only; more samples extend the same rows.
    longer = data.teacher(500, (5, 16, 4), seed=3)
    np.testing.assert_array_equal(longer.x[:300], a.x)
    np.testing.assert_array_equal(longer.y[:300], a.y)


def test_teacher_regression_targets():
    ds = data.teacher(50, (3, 8, 8, 2), seed=0, classification=False)
    assert ds.n_classes is None and ds.y.shape == (50, 2) and ds.y.dtype == np.float32
    assert ds.y.std() > 0.1  # not collapsed to a constant


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, (3, 2)), {"seed": 0}, r"n_samples must be a positive integer, got 0"),
        ((10, (3,)), {"seed": 0}, r"sizes must be at least two positive integers"),
        ((10, (3, 0, 2)), {"seed": 0}, r"sizes must be at least two positive integers"),
        ((10, (3, 2)), {"seed": -1}, r"seed must be a non-negative integer, got -1"),
        ((10, (3, 1)), {"seed": 0}, r"classification needs sizes\[-1\] >= 2 classes, got 1"),
    ],
)
def test_teacher_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=r"teacher: " + message):
        data.teacher(*args, **kwargs)


# --- splits and standardisation ---------------------------------------------------


def _indexed(n):
    # x[:, 0] is the row index, so a split's rows can be traced back to the original.
    return data.Dataset(np.arange(n, dtype=np.float64)[:, None], np.arange(n) % 3, 3, "rows")


@pytest.mark.parametrize(
    ("validation", "test", "sizes"),
    [(0.1, 0.2, (70, 10, 20)), (0.0, 0.3, (70, 0, 30)), (0.25, 0.0, (75, 25, 0))],
)
def test_split_is_disjoint_covering_and_sized(validation, test, sizes):
    parts = data.split(_indexed(100), validation=validation, test=test, seed=1)
    got = [0 if p is None else len(p) for p in parts]
    assert got == list(sizes)
    rows = np.concatenate([p.x[:, 0] for p in parts if p is not None])
    np.testing.assert_array_equal(np.sort(rows), np.arange(100))  # no overlap, no gap
    for p in parts:
        if p is not None:
            np.testing.assert_array_equal(p.y, p.x[:, 0].astype(int) % 3)  # rows stay paired
    assert parts.train.name == "rows[train]" and parts.train.n_classes == 3


def test_split_is_deterministic_per_seed():
    ds = _indexed(50)
    a, b, c = (data.split(ds, seed=s) for s in (7, 7, 8))
    for pa, pb in zip(a, b, strict=True):
        np.testing.assert_array_equal(pa.x, pb.x)
    assert not np.array_equal(a.train.x, c.train.x)
    # The test part does not move when only the validation fraction changes.
    np.testing.assert_array_equal(data.split(ds, validation=0.3, seed=7).test.x, a.test.x)


def test_tiny_fractions_still_get_a_sample():
    parts = data.split(data.load("xor"), validation=0.1, test=0.1, seed=0)
    assert [len(p) for p in parts] == [2, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"validation": 0.5, "test": 0.5}, r"split: 10 samples leave no training data"),
        ({"test": 1.0}, r"split: test must be a fraction in \[0, 1\), got 1.0"),
        ({"validation": -0.1}, r"split: validation must be a fraction"),
        ({"seed": -1}, r"split: seed must be a non-negative integer, got -1"),
        ({"seed": 1.5}, r"split: seed must be a non-negative integer, got 1.5"),
    ],
)
def test_split_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.split(_indexed(10), **kwargs)


def test_standardize_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    train_x = np.column_stack([rng.normal(2.0, 3.0, 200), np.full(200, 5.0)])
    test_x = np.column_stack([rng.normal(50.0, 1.0, 40), np.full(40, 6.0)])
    parts = data.Splits(
        train=data.Dataset(train_x, rng.integers(0, 2, 200), 2, "train"),
        validation=None,
        test=data.Dataset(test_x, rng.integers(0, 2, 40), 2, "test"),
    )
    scaled, stats = data.standardize(parts)
    np.testing.assert_allclose(stats.mean, train_x.mean(0), rtol=1e-6)
    # The constant column keeps std 1: centred, not divided by zero.
    np.testing.assert_allclose(stats.std, [train_x[:, 0].std(), 1.0], rtol=1e-6)
    np.testing.assert_allclose(scaled.train.x.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.train.x[:, 0].std(), 1.0, rtol=1e-5)
    want = (test_x - train_x.mean(0)) / [train_x[:, 0].std(), 1.0]
    np.testing.assert_allclose(scaled.test.x, want, rtol=1e-5)
    assert scaled.test.x[:, 0].mean() > 10  # test statistics were not used
    assert scaled.validation is None
    np.testing.assert_array_equal(scaled.test.y, parts.test.y)
    with pytest.raises(ValueError, match=r"dataset 'iris' has 4 features but the standardizer"):
        stats.apply(data.load("iris"))


def test_standardize_applies_given_statistics_to_every_part():
    parts = data.split(data.load("iris"), validation=0.2, test=0.2, seed=0)
    stats = data.Standardizer.from_moments(
        np.arange(4.0), np.array([1.0, 2.0, 0.0, 4.0]), constant=np.array([0, 0, 1, 0], bool)
    )
    np.testing.assert_array_equal(stats.std, [1.0, 2.0, 1.0, 4.0])  # the constant column: 1
    scaled, same = data.standardize(parts, stats)
    assert same is stats
    for part, original in zip(scaled, parts, strict=True):
        np.testing.assert_allclose(part.x, (original.x - np.arange(4.0)) / stats.std, rtol=1e-6)


def test_standardized_digits_stay_finite():
    scaled, stats = data.standardize(data.split(data.load("digits"), seed=0))
    assert (stats.std == 1).any()  # digits has always-blank pixels
    assert all(np.isfinite(p.x).all() for p in scaled)


# --- IDX --------------------------------------------------------------------------------

_IDX_CODES = {
    "uint8": 0x08,
    "int8": 0x09,
    "int16": 0x0B,
    "int32": 0x0C,
    "float32": 0x0D,
    "float64": 0x0E,
}


def _idx_bytes(a):
    # Written independently of funcbp.idx: magic 00 00 <code> <ndim>, big-endian sizes and values.
    header = struct.pack(">BBBB", 0, 0, _IDX_CODES[a.dtype.name], a.ndim)
    return (
        header
        + struct.pack(f">{a.ndim}I", *a.shape)
        + a.astype(a.dtype.newbyteorder(">")).tobytes()
    )


def _write(path, raw):
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", list(_IDX_CODES))
def test_idx_round_trip(tmp_path, dtype, suffix):
    a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    got = idx.read(_write(tmp_path / f"a-idx3{suffix}", _idx_bytes(a)))
    assert got.dtype == a.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, a)


def _mnist_folder(folder, suffix, n=(5, 3)):
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, count in zip(("train", "t10k"), n, strict=True):
        images = rng.integers(0, 256, (count, 4, 3)).astype(np.uint8)
        labels = rng.integers(0, 10, count).astype(np.uint8)
        _write(folder / f"{prefix}-images-idx3-ubyte{suffix}", _idx_bytes(images))
        _write(folder / f"{prefix}-labels-idx1-ubyte{suffix}", _idx_bytes(labels))
        arrays[prefix] = images, labels
    return arrays


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_load_mnist_folder(tmp_path, suffix):
    arrays = _mnist_folder(tmp_path, suffix)
    for subset, prefix in (("train", "train"), ("test", "t10k")):
        ds = data.load(tmp_path, subset=subset, n_classes=10)
        images, labels = arrays[prefix]
        assert ds.name == f"{tmp_path.name}/{subset}" and ds.n_classes == 10
        np.testing.assert_array_equal(ds.x, images.reshape(len(images), 12))
        np.testing.assert_array_equal(ds.y, labels)
    assert data.load(str(tmp_path)).n_classes == arrays["train"][1].max() + 1


def test_load_mnist_folder_with_dotted_names(tmp_path):
    # Some mirrors spell the files train-images.idx3-ubyte.
    _write(tmp_path / "train-images.idx3-ubyte", _idx_bytes(np.ones((2, 2, 2), np.uint8)))
    _write(tmp_path / "train-labels.idx1-ubyte.gz", _idx_bytes(np.array([1, 0], np.uint8)))
    ds = data.load(tmp_path)
    assert ds.x.shape == (2, 4) and ds.y.tolist() == [1, 0]


def test_idx_refuses_wrong_magic_truncation_and_trailing_bytes(tmp_path):
    good = _idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    cases = {
        "magic": (b"\x00\x00\x07\x02" + good[4:], r"not an IDX file: magic number 0x00000702"),
        "text": (b"PK\x03\x04 zip", r"not an IDX file: magic number 0x504b0304"),
        "short-dims": (good[:6], r"truncated IDX file: 6 bytes, too short for the 2 dimension"),
        "short-values": (
            good[:-1],
            r"truncated IDX file: .*shape \(2, 3\) \(18 bytes .*\) but there are 17",
        ),
        "long": (good + b"\x00", r"IDX file with trailing bytes"),
    }
    for name, (raw, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            idx.read(_write(tmp_path / name, raw))
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(ValueError, match=r"cut.gz: truncated or corrupt gzip stream"):
        idx.read(cut)


def test_load_mnist_folder_refusals(tmp_path):
    with pytest.raises(
        ValueError, match=r"no MNIST-format images file train-images-idx3-ubyte\[.gz\]"
    ):
        data.load(tmp_path)
    _mnist_folder(tmp_path, "", n=(5, 3))
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match=r"x has 5 rows but y has shape \(4,\)"):
        data.load(tmp_path)
    with pytest.raises(ValueError, match=r"subset must be 'train' or 'test', got 'valid'"):
        data.load(tmp_path, subset="valid")


# --- npz and csv --------------------------------------------------------------------------


def test_load_npz_labels_and_regression(tmp_path):
    x = np.arange(24.0).reshape(4, 2, 3)
    np.savez(tmp_path / "labels.npz", x=x, y=np.array([0, 2, 1, 2]))
    ds = data.load(tmp_path / "labels.npz")
    assert ds.name == "labels.npz" and ds.x.shape == (4, 6) and ds.n_classes == 3
    assert data.load(tmp_path / "labels.npz", n_classes=5).n_classes == 5
    np.savez(tmp_path / "reg.npz", x=x[:, 0], y=np.linspace(0, 1, 4))
    reg = data.load(tmp_path / "reg.npz")
    assert reg.n_classes is None and reg.y.shape == (4, 1)
    assert data.load(tmp_path / "labels.npz", classification=False).y.shape == (4, 1)


def test_load_npz_refusals(tmp_path):
    np.savez(tmp_path / "keys.npz", inputs=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(
        ValueError, match=r"keys.npz: needs arrays named 'x' and 'y', found keys 'inputs', 'y'"
    ):
        data.load(tmp_path / "keys.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match=r"junk.npz: not a readable .npz file"):
        data.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "flipped.npz", x=np.ones((50, 2)), y=np.zeros(50, int))
    flipped = bytearray((tmp_path / "flipped.npz").read_bytes())
    flipped[len(flipped) // 3] ^= 0xFF  # inside x: its CRC no longer matches
    (tmp_path / "flipped.npz").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"flipped.npz: arrays 'x' and 'y' are not readable \(Bad"):
        data.load(tmp_path / "flipped.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([[1], ["a"]], object), y=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"objects.npz: arrays 'x' and 'y' are not readable"):
        data.load(tmp_path / "objects.npz")
    np.savez(tmp_path / "nan.npz", x=np.array([[1.0], [np.nan]]), y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"dataset 'nan.npz': x has non-finite values.*row 1"):
        data.load(tmp_path / "nan.npz")


def test_load_csv_with_and_without_header(tmp_path):
    rows = "1.5,2,0\n3,4.25,1\n\n5,6,2\n"
    (tmp_path / "plain.csv").write_text(rows, encoding="utf-8-sig")  # a byte-order mark
    (tmp_path / "named.csv").write_text("a, b ,label\n" + rows)
    for name in ("plain.csv", "named.csv"):
        ds = data.load(tmp_path / name)
        np.testing.assert_array_equal(ds.x, [[1.5, 2], [3, 4.25], [5, 6]])
        np.testing.assert_array_equal(ds.y, [0, 1, 2])
        assert ds.n_classes == 3
    by_name = data.load(tmp_path / "named.csv", target_column="a")
    assert by_name.n_classes is None and by_name.y[:, 0].tolist() == [1.5, 3, 5]
    np.testing.assert_array_equal(
        data.load(tmp_path / "plain.csv", target_column=1).x[:, 1], [0, 1, 2]
    )
    forced = data.load(tmp_path / "plain.csv", classification=False)
    assert forced.n_classes is None and forced.y.shape == (3, 1)
    # header=False makes a first line of words an error instead of a header.
    with pytest.raises(ValueError, match=r"named.csv: line 1, column 1: 'a' is not a number"):
        data.load(tmp_path / "named.csv", header=False)


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("x,y\n1,0\n2,abc\n", {}, r"bad.csv: line 3, column 2: 'abc' is not a number"),
        ("1,2,0\n3,,1\n", {}, r"bad.csv: line 2, column 2: '' is not a number"),
        ("1,2,0\n3,4\n", {}, r"bad.csv: line 2 has 2 cells, expected 3"),
        ("", {}, r"bad.csv: no rows \(the data are empty\)"),
        ("a,b\n", {}, r"bad.csv: no data rows after the header"),
        ("1\n2\n", {}, r"needs at least 2 columns"),
        ("a,b\n1,2\n", {"target_column": "c"}, r"no column named 'c'; columns: a, b"),
        (
            "1,2\n",
            {"target_column": "b"},
            r"target_column='b' names a column but there is no header",
        ),
        ("1,2\n", {"target_column": 2}, r"target_column 2 is out of range for 2 columns"),
        (
            "1,nan\n2,1\n",
            {"classification": False},
            r"dataset 'bad.csv': y has non-finite values \(1 NaN",
        ),
        ("1,0\n2,7\n", {"n_classes": 3}, r"label 7 at row 1 is out of range for 3 classes"),
    ],
)
def test_load_csv_refusals(tmp_path, text, options, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        data.load(tmp_path / "bad.csv", **options)


def test_load_csv_refuses_text_that_is_not_utf8(tmp_path):
    (tmp_path / "latin1.csv").write_bytes("x,größe\n1,2\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.csv: not UTF-8 text \('utf-8' codec"):
        data.load(tmp_path / "latin1.csv")


# --- load dispatch ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("irsi", {}, r"unknown dataset 'irsi'; built-in names: xor, iris, digits, regression"),
        ("data.txt", {}, r"unknown dataset 'data.txt'"),
        ("missing.csv", {}, r"missing.csv: no such file"),
        (
            "iris",
            {"n_classes": 3},
            r"built-in dataset 'iris' takes no option 'n_classes'; valid options: none",
        ),
        (3, {}, r"load: expected a dataset name or a path, got 3"),
        ("xor", {"max_bytes": 0}, r"max_bytes must be a positive number of bytes, got 0"),
    ],
)
def test_load_refusals(source, options, message):
    with pytest.raises(ValueError, match=message):
        data.load(source, **options)


def test_load_refuses_options_of_another_format(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1)), y=np.array([0, 1]))
    with pytest.raises(
        ValueError,
        match=r"takes no option 'target_column'; valid options: classification, n_classes",
    ):
        data.load(tmp_path / "d.npz", target_column=0)
    (tmp_path / "d.csv").write_text("a,b\n1,0\n")
    with pytest.raises(ValueError, match=r"option header must be True, False or None, got 'no'"):
        data.load(tmp_path / "d.csv", header="no")  # a TOML string would drop the first row
    with pytest.raises(ValueError, match=r"option classification must be True, False or None"):
        data.load(tmp_path / "d.npz", classification=1)


def test_every_refusal_is_a_data_error():
    # The command line reports exactly DataError (and ConfigError, CheckpointError) as
    # bad input; a ValueError of another kind from funcbp.data would look like a bug.
    refusals = [
        lambda: data.load("no-such-set"),
        lambda: data.Dataset(_X, _LABELS[:5], 3, "bad"),
        lambda: data.split(data.load("xor"), test=0.9),
        lambda: data.teacher(0, (2, 2), seed=0),
        lambda: data.check_fits(data.load("xor"), _net((3, 2), "softmax_cross_entropy")),
        lambda: idx.read(__file__),  # not an IDX file
    ]
    for refuse in refusals:
        with pytest.raises(funcbp.DataError):
            refuse()


# --- files that lie about their size, and sizes bounded before allocating ------------------


@contextlib.contextmanager
def _within(seconds):
    # A refusal must come at once: reading /dev/zero or waiting on a FIFO would never end.
    def interrupt(signum, frame):
        raise TimeoutError(f"not refused within {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _npy(shape, dtype, data=b""):
    # An .npy header written by hand (format 1.0), so it can declare what it likes.
    text = repr({"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape})
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode() + data


def _npz(path, x, y):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", x)
        archive.writestr("y.npy", y)
    return path


_TWO_LABELS = _npy((2,), "<i8", np.array([0, 1]).tobytes())
_MB = 2**20
_OVER = r"more than the data limit of 1\.0 MiB .*raise it with max_bytes=N \(data.max_bytes"


def _rows_2_40(tmp_path):
    path = _npz(tmp_path / "rows.npz", _npy((2**40, 2), "<f8", bytes(1024)), _TWO_LABELS)
    assert path.stat().st_size < 2048
    message = (
        r"rows.npz: x.npy declares float64 values of shape \(1099511627776, 2\) "
        r"\(17592186044416 bytes\) but holds 1024 bytes after its header"
    )
    return lambda: data.load(path), message


def _zip_bomb(tmp_path):
    x = _npy((20 * _MB // 8,), "<f8", bytes(20 * _MB))
    path = _npz(tmp_path / "bomb.npz", x, _TWO_LABELS)
    assert path.stat().st_size < 100_000  # 20 MiB of zeros, deflated
    message = r"bomb.npz: arrays 'x' float64 \[2621440\] and 'y' int64 \[2\] need 20\.0 MiB "
    return lambda: data.load(path, max_bytes=_MB), message + r"\(20971536 bytes\), " + _OVER


def _gzip_bomb(tmp_path):
    header = struct.pack(">BBBBIII", 0, 0, 8, 3, 20_000, 32, 32)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(20 * _MB)))
    message = (
        r"train-images-idx3-ubyte.gz: the header declares uint8 values of shape "
        r"\(20000, 32, 32\) \(20480016 bytes with the header\), which need 19\.5 MiB "
    )
    return lambda: data.load(tmp_path, max_bytes=_MB), message + r".*" + _OVER


def _gzip_longer_than_declared(tmp_path):
    path = tmp_path / "longer-idx1.gz"
    path.write_bytes(gzip.compress(struct.pack(">BBBBI", 0, 0, 8, 1, 2) + bytes(20 * _MB)))
    message = (
        r"longer-idx1.gz: IDX file with trailing bytes: .*shape \(2,\) \(10 bytes with the "
        r"header\) but there are more than 10 bytes"
    )
    return lambda: idx.read(path, max_bytes=_MB), message


def _idx_declaring_2_40(tmp_path):
    path = _write(tmp_path / "huge-idx2", struct.pack(">BBBBII", 0, 0, 8, 2, 2**20, 2**20))
    message = r"huge-idx2: truncated IDX file: .*shape \(1048576, 1048576\) .* there are 12 bytes"
    return lambda: idx.read(path), message


def _csv_linked_to_dev_zero(tmp_path):
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    message = r"zero.csv \(a link to /dev/zero\): a character device, not a regular file"
    return lambda: data.load(tmp_path / "zero.csv"), message


def _csv_that_is_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo.csv")
    message = r"fifo.csv: a FIFO \(named pipe\), not a regular file"
    return lambda: data.load(tmp_path / "fifo.csv"), message


def _csv_over_the_limit(tmp_path):
    (tmp_path / "large.csv").write_text("1,0\n" * 1000)
    message = r"large.csv: the file has 3\.9 KiB \(4000 bytes\), more than the data limit of 1000 B"
    return lambda: data.load(tmp_path / "large.csv", max_bytes=1000), message


@pytest.mark.parametrize(
    "make",
    [
        _rows_2_40,
        _zip_bomb,
        _gzip_bomb,
        _gzip_longer_than_declared,
        _idx_declaring_2_40,
        _csv_linked_to_dev_zero,
        _csv_that_is_a_fifo,
        _csv_over_the_limit,
    ],
)
def test_files_that_lie_about_their_size_are_refused_before_reading(tmp_path, make):
    refuse, message = make(tmp_path)
    with _within(10), pytest.raises(funcbp.DataError, match=message):
        refuse()


@pytest.mark.parametrize(
    ("n_samples", "sizes", "max_bytes", "message"),
    [
        (
            10**10,
            (64, 10),
            None,
            r"10000000000 samples of sizes \(64, 10\) \(x \[10000000000, 64\]",
        ),
        (100, (10**6, 10**6), None, r"100 samples of sizes \(1000000, 1000000\)"),
        (
            1000,
            (10, 10),
            10_000,
            r"1000 samples .* need 117\.6 KiB \(120400 bytes\), more than the .* of 9\.8 KiB",
        ),
    ],
    ids=["10**10 samples", "10**12 weights", "over max_bytes"],
)
def test_teacher_refuses_what_would_not_fit_before_allocating(n_samples, sizes, max_bytes, message):
    with (
        _within(10),
        pytest.raises(funcbp.DataError, match=r"teacher: " + message + r".*max_bytes=N"),
    ):
        data.teacher(n_samples, sizes, seed=0, max_bytes=max_bytes)


# --- labels: one class, whole-number floats, fractions --------------------------------------


def test_labels_of_one_class_warn_naming_the_set(tmp_path):
    (tmp_path / "one.csv").write_text("1,0\n2,0\n3,0\n")
    with pytest.warns(
        data.DataWarning, match=r"dataset 'one.csv': every label is 0 \(one class of 2\)"
    ):
        data.load(tmp_path / "one.csv")
    rows = data.Dataset(np.arange(10.0)[:, None], np.arange(10) == 9, 2, "rare")
    data.split(rows, validation=0.1, test=0.1, seed=0)  # the 1 is in training: no warning
    with pytest.warns(data.DataWarning, match=r"dataset 'rare\[train\]' \(the other classes went"):
        data.split(rows, validation=0.1, test=0.1, seed=3)


def test_whole_number_float_labels_are_classes_and_a_fraction_is_named(tmp_path):
    np.savez(tmp_path / "floats.npz", x=np.zeros((4, 1)), y=np.array([0.0, 1.0, 2.0, 1.0]))
    ds = data.load(tmp_path / "floats.npz")
    assert ds.n_classes == 3 and ds.y.dtype == np.int32 and ds.y.tolist() == [0, 1, 2, 1]
    (tmp_path / "frac.csv").write_text("0,0\n1,1\n2,1.5\n3,2\n")
    with pytest.raises(funcbp.DataError, match=r"'frac.csv': label 1.5 at row 2 is not a whole"):
        data.load(tmp_path / "frac.csv", n_classes=3)
    values = data.load(tmp_path / "frac.csv")  # not every target a class: regression values
    assert values.n_classes is None
    with pytest.raises(
        funcbp.DataError,
        match=r"dataset 'frac.csv': target 1.5 at row 2 is not a whole number, so y was read as "
        r"regression values; softmax_cross_entropy needs class labels",
    ):
        data.check_fits(values, _net((1, 3), "softmax_cross_entropy"))
