"""Datasets as validated host (numpy) arrays: built-ins, user files, a teacher, splits.

Everything here runs before any compilation and imports no JAX. A ``Dataset`` is
checked once, when it is made, so that a NaN, a label out of range or a length
mismatch is reported by one message naming the array and the first bad row,
not as a shape error inside ``jit``; ``check_fits`` then checks it against a
network::

    data = load("iris")          # "xor", "digits", "regression", a .npz or .csv file,
                                 # or a folder of MNIST-format IDX files
    parts, stats = standardize(split(data, seed=0))   # mean/std of parts.train only
    check_fits(parts.train, MLP((4, 16, 3), cost="softmax_cross_entropy"))
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.resources
import inspect
import itertools
import math
import numbers
import os
import pathlib
import zipfile
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from funcbp.data import idx

if TYPE_CHECKING:
    from funcbp.mlp import MLP

BUILTINS: tuple[str, ...] = ("xor", "iris", "digits", "regression")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Inputs and targets for one task, validated and converted when constructed.

    Attributes:
      x: inputs ``[n, n_features]`` float32, all finite.
      y: class labels ``[n]`` int32 in ``[0, n_classes - 1]``, or regression targets
        ``[n, n_out]`` float32, all finite.
      n_classes: the number of classes (at least 2), or ``None`` for regression.
      name: where the data came from; messages name it.

    Raises:
      ValueError: on construction, if the data are empty or not numeric, ``x`` is
        not 2-D, ``x`` and ``y`` differ in length, a value is NaN or inf, or a label
        is not a whole number in range; the message names the array and first row.
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int | None = None
    name: str = "data"

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r}"
        x, y = np.asarray(self.x), np.asarray(self.y)
        _check_arrays(where, x, y)
        if self.n_classes is None:
            if y.ndim != 2:
                raise ValueError(
                    f"{where}: regression targets y have shape {y.shape}, expected [n, n_out]; "
                    "reshape them with y[:, None], or pass n_classes for class labels"
                )
            y = _float32(where, "y", y)
        else:
            y = _labels(where, y, self.n_classes)
        object.__setattr__(self, "x", _float32(where, "x", x))
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, x {list(self.x.shape)} {self.x.dtype}, "
            f"y {list(self.y.shape)} {self.y.dtype}, n_classes={self.n_classes})"
        )

    @property
    def n_features(self) -> int:
        """The input width: a network for this data has ``sizes[0] == n_features``."""
        return self.x.shape[1]

    @property
    def n_outputs(self) -> int:
        """The output width: ``n_classes`` for labels, ``n_out`` for regression targets."""
        return self.y.shape[1] if self.n_classes is None else self.n_classes


def _check_arrays(where: str, x: np.ndarray, y: np.ndarray) -> None:
    for which, a in (("x", x), ("y", y)):
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{where}: {which} has dtype {a.dtype}, expected numbers")
    if x.ndim != 2:
        hint = "; reshape a single feature with x[:, None]" if x.ndim == 1 else ""
        raise ValueError(f"{where}: x has shape {x.shape}, expected [n, n_features]{hint}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: the data are empty (x has shape {x.shape})")
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{where}: x has {x.shape[0]} rows but y has shape {y.shape}; "
            "they need one row per sample"
        )
    for which, a in (("x", x), ("y", y)):
        bad = ~np.isfinite(a)
        if bad.any():
            n_nan = int(np.isnan(a).sum())
            rows = np.flatnonzero(bad.reshape(a.shape[0], -1).any(axis=1))
            raise ValueError(
                f"{where}: {which} has non-finite values ({n_nan} NaN, "
                f"{int(bad.sum()) - n_nan} inf) in {rows.size} row{'s' * (rows.size > 1)}; "
                f"the first is row {rows[0]}"
            )


def _float32(where: str, which: str, a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = a.astype(np.float32, copy=False)
    # Finite float64 values beyond float32's range would turn into inf silently.
    if not np.isfinite(out).all():
        raise ValueError(
            f"{where}: {which} has values beyond the float32 range "
            f"(largest magnitude {np.abs(a).max():g})"
        )
    return out


def _labels(where: str, y: np.ndarray, n_classes: int) -> np.ndarray:
    if not isinstance(n_classes, numbers.Integral) or isinstance(n_classes, bool) or n_classes < 2:
        raise ValueError(
            f"{where}: n_classes must be an integer >= 2, or None for regression targets, "
            f"got {n_classes!r}"
        )
    if y.ndim != 1:
        raise ValueError(
            f"{where}: class labels y have shape {y.shape}, expected [n]; "
            "pass n_classes=None for regression targets [n, n_out]"
        )
    if y.dtype.kind == "f" and not (whole := y == np.round(y)).all():
        row = int(np.argmin(whole))
        raise ValueError(
            f"{where}: label {y[row]:g} at row {row} is not a whole number; class labels "
            f"are integers in [0, {n_classes - 1}]"
        )
    outside = (y < 0) | (y >= n_classes)
    if outside.any():
        row = int(np.argmax(outside))
        raise ValueError(
            f"{where}: label {y[row]:g} at row {row} is out of range for {n_classes} classes "
            f"(labels must lie in [0, {n_classes - 1}])"
        )
    return y.astype(np.int32)


def _count_classes(y: np.ndarray) -> int:
    # The largest label + 1 (at least 2); a bad label is reported by Dataset itself.
    values = y[np.isfinite(y)] if y.dtype.kind in "biuf" else y[:0]
    return max(int(values.max()) + 1, 2) if values.size else 2


def _dataset(name: str, x, y, *, labels: bool, n_classes: int | None) -> Dataset:
    x, y = np.asarray(x), np.asarray(y)
    if labels:
        return Dataset(x, y, _count_classes(y) if n_classes is None else n_classes, name)
    if n_classes is not None:
        raise ValueError(f"{name}: n_classes={n_classes!r} given with classification=False")
    return Dataset(x, y[:, None] if y.ndim == 1 else y, None, name)


# --- checks against a network -----------------------------------------------------


def check_fits(data: Dataset | tuple[np.ndarray, np.ndarray], net: MLP) -> None:
    """Raises ``ValueError`` naming what in ``data`` does not fit ``net``.

    ``x`` needs ``net.sizes[0]`` features and ``y`` what ``net.cost`` takes for
    ``net.sizes[-1]`` outputs: ``softmax_cross_entropy`` integer labels ``[n]`` in
    ``[0, sizes[-1] - 1]`` (a ``Dataset`` needs ``n_classes == sizes[-1]``) or rows
    ``[n, sizes[-1]]``; ``sigmoid_binary_cross_entropy`` targets ``[n, sizes[-1]]`` in
    ``[0, 1]``; ``mse`` targets ``[n, sizes[-1]]``. Runs on host arrays, before any
    compilation.

    Args:
      data: a ``Dataset``, or a pair ``(x [n, n_features], y)`` of arrays, which is
        checked for emptiness, NaN/inf and matching lengths as a ``Dataset`` is.
      net: a ``funcbp.MLP``.
    """
    # losses imports JAX; importing it here keeps loading data numpy-only.
    from funcbp import losses

    if isinstance(data, Dataset):
        where, x, y = f"dataset {data.name!r}", data.x, data.y
    elif isinstance(data, tuple | list) and len(data) == 2:
        where, x, y = "check_fits", np.asarray(data[0]), np.asarray(data[1])
        _check_arrays(where, x, y)
    else:
        raise ValueError(f"check_fits: data must be a Dataset or a pair (x, y), got {data!r}")
    if x.shape[1] != net.sizes[0]:
        raise ValueError(
            f"{where}: x has {x.shape[1]} features but the network takes {net.sizes[0]} "
            f"inputs (sizes {net.sizes})"
        )
    n_classes = getattr(data, "n_classes", None)
    if net.cost == "softmax_cross_entropy" and n_classes not in (None, net.sizes[-1]):
        raise ValueError(
            f"{where}: the labels have {n_classes} classes but the network has "
            f"{net.sizes[-1]} outputs (sizes {net.sizes}); softmax_cross_entropy needs one "
            "output per class"
        )
    try:
        losses.get(net.cost).check_targets(y, (x.shape[0], net.sizes[-1]))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


# --- sources ------------------------------------------------------------------------


def load(source: str | os.PathLike, **options) -> Dataset:
    """Loads a built-in dataset by name, or a user's file or folder by path.

    Built-ins (no options): ``"xor"`` (4 x 2, 2 classes), ``"iris"`` (150 x 4, 3
    classes), ``"digits"`` (1797 x 64 pixels 0-16, 10 classes), shipped in
    ``funcbp/datasets/``; ``"regression"``: ``y = sin(x) + 0.1 noise`` for 256
    points ``x`` in ``[-pi, pi]`` (x ``[256, 1]``, y ``[256, 1]``), from a fixed seed.

    Paths (a ``str`` that is not a built-in name, or any ``os.PathLike``):

    * ``*.npz`` with arrays ``x`` ``[n, ...]`` (flattened to ``[n, n_features]``) and
      ``y``. Options: ``classification`` (default: ``y`` is 1-D integer),
      ``n_classes`` (default: largest label + 1).
    * ``*.csv``, numeric, one sample a line. Options: ``target_column`` (index or
      header name, default ``-1``; the other columns are ``x``), ``header`` (default:
      the first line is a header if any of its cells is not a number),
      ``classification`` (default: every target is a whole number >= 0),
      ``n_classes``.
    * a folder of MNIST-format IDX files, ``train-images-idx3-ubyte`` and
      ``train-labels-idx1-ubyte`` (``t10k-...`` for the test set; ``.gz`` or plain;
      ``train-images.idx3-ubyte`` spellings too). Images are flattened to ``[n, rows *
      cols]``, values kept as stored (0-255). Options: ``subset`` (``"train"`` or
      ``"test"``), ``n_classes`` (default: largest label + 1).

    Regression targets from files are ``[n, 1]`` float32 (or ``[n, n_out]`` as stored).

    Raises:
      ValueError: an unknown name (the message lists the built-ins), a missing or
        unreadable file, an option the source does not take, or invalid data (see
        ``Dataset``).
    """
    if isinstance(source, str) and source in BUILTINS:
        where, loader, arg = f"built-in dataset {source!r}", _builtin, source
    elif not isinstance(source, str | os.PathLike):
        raise ValueError(f"load: expected a dataset name or a path, got {source!r}")
    else:
        path = pathlib.Path(source)
        loaders = {".npz": _load_npz, ".csv": _load_csv}
        if path.is_dir():
            loader = _load_idx
        elif path.suffix.lower() in loaders:
            loader = loaders[path.suffix.lower()]
        else:
            raise ValueError(
                f"unknown dataset {os.fspath(source)!r}; built-in names: {', '.join(BUILTINS)}; "
                "or give a .npz or .csv file, or a folder of MNIST-format IDX files"
            )
        if not path.exists():
            raise ValueError(f"{path}: no such file")
        where, arg = str(path), path
    _check_options(where, loader, options)
    return loader(arg, **options)


def _check_options(where: str, loader: Callable, options: dict) -> None:
    valid = [
        name
        for name, param in inspect.signature(loader).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"load: {where} takes no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid) or 'none'}"
        )
    for name in ("header", "classification"):  # None: decided from the data
        if not isinstance(options.get(name), bool | None):
            raise ValueError(
                f"load: option {name} must be True, False or None, got {options[name]!r}"
            )


def _builtin(name: str) -> Dataset:
    if name == "regression":
        # Small, smooth and reproducible: 256 noisy samples of sin on [-pi, pi].
        rng = np.random.default_rng(0)
        x = rng.uniform(-np.pi, np.pi, size=(256, 1))
        return Dataset(x, np.sin(x) + 0.1 * rng.standard_normal(x.shape), None, name)
    resource = importlib.resources.files("funcbp").joinpath("datasets", f"{name}.npz")
    with resource.open("rb") as f, np.load(f, allow_pickle=False) as arrays:
        y = arrays["y"]
        return Dataset(arrays["x"], y, int(y.max()) + 1, name)


def _load_npz(
    path: pathlib.Path, *, classification: bool | None = None, n_classes: int | None = None
) -> Dataset:
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: holds one .npy array, expected an .npz with arrays 'x' and 'y'")
    with arrays:
        if not {"x", "y"} <= set(arrays.files):
            found = ", ".join(repr(key) for key in sorted(arrays.files)) or "none"
            raise ValueError(f"{path}: needs arrays named 'x' and 'y', found keys {found}")
        try:  # each array is read (and its checksum checked) only now
            x, y = arrays["x"], arrays["y"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise ValueError(f"{path}: arrays 'x' and 'y' are not readable ({err})") from None
    if x.ndim > 2:
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
    if classification is None:
        classification = n_classes is not None or (y.ndim == 1 and y.dtype.kind in "biu")
    return _dataset(path.name, x, y, labels=classification, n_classes=n_classes)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _load_csv(
    path: pathlib.Path,
    *,
    target_column: int | str = -1,
    header: bool | None = None,
    classification: bool | None = None,
    n_classes: int | None = None,
) -> Dataset:
    lines = []
    # utf-8-sig drops the byte-order mark spreadsheets write, which would make the first
    # cell non-numeric and the first data row a "header".
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    lines.append((reader.line_num, [cell.strip() for cell in cells]))
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not UTF-8 text ({err})") from None
        except csv.Error as err:
            raise ValueError(f"{path}: line {reader.line_num}: {err}") from None
    if not lines:
        raise ValueError(f"{path}: no rows (the data are empty)")
    if header is None:
        header = not all(_is_number(cell) for cell in lines[0][1])
    names, width = (lines[0][1] if header else None), len(lines[0][1])
    if width < 2:
        raise ValueError(f"{path}: needs at least 2 columns (features and a target), found 1")
    target = _target_index(path, target_column, names, width)
    rows = []
    for line, cells in lines[1:] if header else lines:
        if len(cells) != width:
            raise ValueError(f"{path}: line {line} has {len(cells)} cells, expected {width}")
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            column, cell = next((j, c) for j, c in enumerate(cells) if not _is_number(c))
            raise ValueError(
                f"{path}: line {line}, column {column + 1}: {cell!r} is not a number"
            ) from None
    if not rows:
        raise ValueError(f"{path}: no data rows after the header (the data are empty)")
    values = np.array(rows)
    x, y = np.delete(values, target, axis=1), values[:, target]
    if classification is None:
        whole = np.isfinite(y).all() and (y >= 0).all() and (y == np.round(y)).all()
        classification = n_classes is not None or bool(whole)
    return _dataset(path.name, x, y, labels=classification, n_classes=n_classes)


def _target_index(
    path: pathlib.Path, column: int | str, names: list[str] | None, width: int
) -> int:
    if isinstance(column, str):
        if names is None:
            raise ValueError(
                f"{path}: target_column={column!r} names a column but there is no header"
            )
        if column not in names:
            raise ValueError(f"{path}: no column named {column!r}; columns: {', '.join(names)}")
        return names.index(column)
    if not isinstance(column, numbers.Integral) or isinstance(column, bool):
        raise ValueError(f"{path}: target_column must be a column index or name, got {column!r}")
    if not -width <= column < width:
        raise ValueError(f"{path}: target_column {column} is out of range for {width} columns")
    return int(column) % width


def _load_idx(
    folder: pathlib.Path, *, subset: str = "train", n_classes: int | None = None
) -> Dataset:
    prefixes = {"train": "train", "test": "t10k"}
    if subset not in prefixes:
        raise ValueError(f"{folder}: subset must be 'train' or 'test', got {subset!r}")
    images = idx.read(_idx_file(folder, prefixes[subset], "images", 3))
    labels = idx.read(_idx_file(folder, prefixes[subset], "labels", 1))
    x = images.reshape(images.shape[0], math.prod(images.shape[1:]))
    name = f"{folder.resolve().name}/{subset}"
    return _dataset(name, x, labels, labels=True, n_classes=n_classes)


def _idx_file(folder: pathlib.Path, prefix: str, kind: str, ndim: int) -> pathlib.Path:
    stems = (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte")
    for stem, suffix in itertools.product(stems, ("", ".gz")):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    raise ValueError(f"{folder}: no MNIST-format {kind} file {stems[0]}[.gz]")


def _is_count(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def teacher(
    n_samples: int, sizes: Sequence[int], *, seed: int, classification: bool = True
) -> Dataset:
    """A synthetic task of any size: a random tanh MLP labels gaussian inputs.

    Inputs are ``x ~ N(0, 1)``. The teacher has weights ``N(0, 1 / n_in)`` (so its
    tanh units neither saturate nor stay linear), biases ``N(0, 0.1^2)`` (so it is
    not an odd function), tanh hidden layers and an identity output layer. Inputs
    and teacher come from separate streams of ``seed``: the teacher depends on
    ``seed`` and ``sizes`` only, and a larger ``n_samples`` extends the same rows.

    Args:
      n_samples: the number of samples ``n``.
      sizes: teacher widths ``(n_in, hidden..., n_out)``; any student with
        ``sizes[0]`` inputs and ``sizes[-1]`` outputs fits the data.
      seed: a non-negative integer; equal arguments give equal datasets.
      classification: labels ``argmax(out)`` ``[n]`` with ``n_out`` classes, or else
        the outputs themselves as regression targets ``[n, n_out]``.

    Returns:
      A ``Dataset`` with ``x`` ``[n, n_in]`` float32.
    """
    if not _is_count(n_samples) or n_samples == 0:
        raise ValueError(f"teacher: n_samples must be a positive integer, got {n_samples!r}")
    if (
        isinstance(sizes, str)
        or not isinstance(sizes, Sequence)
        or len(sizes) < 2
        or not all(_is_count(n) and n > 0 for n in sizes)
    ):
        raise ValueError(
            f"teacher: sizes must be at least two positive integers (n_in, ..., n_out), "
            f"got {sizes!r}"
        )
    if not _is_count(seed):
        raise ValueError(f"teacher: seed must be a non-negative integer, got {seed!r}")
    if classification and sizes[-1] < 2:
        raise ValueError(f"teacher: classification needs sizes[-1] >= 2 classes, got {sizes[-1]}")
    rng_teacher, rng_x = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    x = rng_x.standard_normal((n_samples, sizes[0]), dtype=np.float32)
    a = x
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = rng_teacher.standard_normal((n_in, n_out), dtype=np.float32)
        w /= np.float32(math.sqrt(n_in))
        b = np.float32(0.1) * rng_teacher.standard_normal(n_out, dtype=np.float32)
        z = a @ w + b[None, :]
        a = np.tanh(z) if layer < len(sizes) - 2 else z
    name = f"teacher{tuple(int(n) for n in sizes)}"
    if classification:
        return Dataset(x, np.argmax(a, axis=1), sizes[-1], name)
    return Dataset(x, a, None, name)


# --- splits and standardisation ----------------------------------------------------


class Splits(NamedTuple):
    """Disjoint parts of one dataset that together cover it."""

    train: Dataset
    validation: Dataset | None  # None when split(..., validation=0)
    test: Dataset | None  # None when split(..., test=0)


def split(dataset: Dataset, *, validation: float = 0.1, test: float = 0.2, seed: int = 0) -> Splits:
    """Shuffles ``dataset`` with ``seed`` and cuts it into train, validation and test.

    A fraction ``f > 0`` of ``n`` samples gives ``max(1, round(f * n))`` of them;
    training gets the rest. The test part is taken first from one permutation, so
    with the same seed it does not change when ``validation`` does.

    Args:
      dataset: the data to split.
      validation: fraction for the validation part, in ``[0, 1)``.
      test: fraction for the test part, in ``[0, 1)``.
      seed: seeds ``numpy.random.default_rng``; equal seeds give equal splits.

    Returns:
      ``Splits(train, validation, test)``, named ``"<name>[train]"`` and so on.
    """
    for what, fraction in (("validation", validation), ("test", test)):
        if not isinstance(fraction, numbers.Real) or not 0 <= fraction < 1:
            raise ValueError(f"split: {what} must be a fraction in [0, 1), got {fraction!r}")
    if not _is_count(seed):
        raise ValueError(f"split: seed must be a non-negative integer, got {seed!r}")
    n = len(dataset)
    n_test, n_val = (max(1, round(f * n)) if f > 0 else 0 for f in (test, validation))
    if n_test + n_val >= n:
        raise ValueError(
            f"split: {n} samples leave no training data after {n_test} test and {n_val} "
            f"validation samples (test={test}, validation={validation})"
        )
    order = np.random.default_rng(seed).permutation(n)
    return Splits(
        train=_take(dataset, order[n_test + n_val :], "train"),
        validation=_take(dataset, order[n_test : n_test + n_val], "validation"),
        test=_take(dataset, order[:n_test], "test"),
    )


def _take(dataset: Dataset, rows: np.ndarray, part: str) -> Dataset | None:
    if rows.size == 0:
        return None
    name = f"{dataset.name}[{part}]"
    return Dataset(dataset.x[rows], dataset.y[rows], dataset.n_classes, name)


class Standardizer(NamedTuple):
    """Per-feature ``(x - mean) / std`` with statistics fitted on one (training) dataset.

    Attributes:
      mean: ``[n_features]`` float32.
      std: ``[n_features]`` float32; 1 where the fitted column is constant (the
        always-blank pixels of digits), so such a column is centred, not divided by 0.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, dataset: Dataset) -> Standardizer:
        """Statistics of ``dataset.x`` (computed in float64)."""
        x = dataset.x
        mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64)
        return cls.from_moments(mean, std, constant=np.ptp(x, axis=0) == 0)

    @classmethod
    def from_moments(cls, mean: np.ndarray, std: np.ndarray, constant: np.ndarray) -> Standardizer:
        """From per-feature ``[n_features]`` mean and std; ``constant`` columns get std 1."""
        return cls(mean.astype(np.float32), np.where(constant, 1.0, std).astype(np.float32))

    def apply(self, dataset: Dataset) -> Dataset:
        """``dataset`` with ``x`` standardised; ``y`` is left as it is."""
        if dataset.n_features != self.mean.shape[0]:
            raise ValueError(
                f"dataset {dataset.name!r} has {dataset.n_features} features but the "
                f"standardizer was fitted on {self.mean.shape[0]}"
            )
        x = (dataset.x - self.mean[None, :]) / self.std[None, :]
        return dataclasses.replace(dataset, x=x)


def standardize(splits: Splits, stats: Standardizer | None = None) -> tuple[Splits, Standardizer]:
    """Standardises every part with ``stats``, by default those of ``splits.train`` only.

    Returns:
      The standardised splits and the ``Standardizer``, to apply to later data.
    """
    if stats is None:
        stats = Standardizer.fit(splits.train)
    return Splits(*(None if part is None else stats.apply(part) for part in splits)), stats
