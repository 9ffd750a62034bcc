"""The ``Dataset`` type: host arrays validated once, when made, and checked against a network.

A NaN, a label out of range or a length mismatch is reported by one
``DataError`` naming the array and the first bad row, not as a shape error
inside ``jit``.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from typing import TYPE_CHECKING

import numpy as np

from funcbp.errors import DataError

if TYPE_CHECKING:
    from funcbp.mlp import MLP


class DataWarning(UserWarning):
    """Data that can be trained on but are likely not what was meant (one class only)."""


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Inputs and targets for one task, validated and converted when constructed.

    Attributes:
      x: inputs ``[n, n_features]`` float32, all finite.
      y: class labels ``[n]`` int32 in ``[0, n_classes - 1]``, or regression targets
        ``[n, n_out]`` float32, all finite.
      n_classes: the number of classes (at least 2), or ``None`` for regression.
      name: where the data came from; messages name it.
      sample_weight: one weight per sample ``[n]`` float32, finite, ``>= 0`` and not
        all 0 (the losses become weighted means), or ``None``: every sample weighs 1.
        ``split``, ``subset`` and ``standardize`` keep each weight with its row.

    Raises:
      DataError: on construction, if the data are empty or not numeric, ``x`` is
        not 2-D, ``x`` and ``y`` differ in length, a value is NaN or inf, a label
        is not a whole number in range, or ``sample_weight`` is not ``[n]`` finite
        weights ``>= 0``, not all 0; the message names the array and first row.
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int | None = None
    name: str = "data"
    sample_weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r}"
        x, y = np.asarray(self.x), np.asarray(self.y)
        _check_arrays(where, x, y)
        if self.n_classes is None:
            if y.ndim != 2:
                raise DataError(
                    f"{where}: regression targets y have shape {y.shape}, expected [n, n_out]; "
                    "reshape them with y[:, None], or pass n_classes for class labels"
                )
            y = _float32(where, "y", y)
        else:
            y = _labels(where, y, self.n_classes)
        object.__setattr__(self, "x", _float32(where, "x", x))
        object.__setattr__(self, "y", y)
        if self.sample_weight is not None:
            weights = _sample_weight(where, np.asarray(self.sample_weight), x.shape[0])
            object.__setattr__(self, "sample_weight", weights)

    def subset(self, rows, part: str | None = None) -> Dataset:
        """The samples ``rows`` (indices, a slice or a mask), each with its weight;
        named ``"<name>[<part>]"`` when ``part`` is given."""
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        name = self.name if part is None else f"{self.name}[{part}]"
        return Dataset(self.x[rows], self.y[rows], self.n_classes, name, weights)

    def weighted_by_class(self, class_weight) -> Dataset:
        """This dataset with each sample's weight multiplied by ``class_weight[label]``
        (``[n_classes]``, e.g. from ``funcbp.data.class_weights``); no weights: 1 each.

        Raises:
          DataError: the data are regression targets (no classes), ``class_weight`` is not
            ``[n_classes]``, or the weights that result are all 0.
        """
        where = f"dataset {self.name!r}"
        if self.n_classes is None:
            raise DataError(f"{where}: class weights need class labels; these are regression "
                            "targets")  # fmt: skip
        factors = np.asarray(class_weight, dtype=np.float64)
        if factors.shape != (self.n_classes,):
            raise DataError(f"{where}: class weights have shape {factors.shape}, expected "
                            f"({self.n_classes},): one per class")  # fmt: skip
        weights = factors[self.y]
        if self.sample_weight is not None:
            weights = weights * self.sample_weight
        return dataclasses.replace(self, sample_weight=weights)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        weighted = "" if self.sample_weight is None else ", weighted"
        return (
            f"Dataset({self.name!r}, x {list(self.x.shape)} {self.x.dtype}, "
            f"y {list(self.y.shape)} {self.y.dtype}, n_classes={self.n_classes}{weighted})"
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
            raise DataError(f"{where}: {which} has dtype {a.dtype}, expected numbers")
    if x.ndim != 2:
        hint = "; reshape a single feature with x[:, None]" if x.ndim == 1 else ""
        raise DataError(f"{where}: x has shape {x.shape}, expected [n, n_features]{hint}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{where}: the data are empty (x has shape {x.shape})")
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise DataError(
            f"{where}: x has {x.shape[0]} rows but y has shape {y.shape}; "
            "they need one row per sample"
        )
    for which, a in (("x", x), ("y", y)):
        bad = ~np.isfinite(a)
        if bad.any():
            n_nan = int(np.isnan(a).sum())
            rows = np.flatnonzero(bad.reshape(a.shape[0], -1).any(axis=1))
            raise DataError(
                f"{where}: {which} has non-finite values ({n_nan} NaN, "
                f"{int(bad.sum()) - n_nan} inf) in {rows.size} row{'s' * (rows.size > 1)}; "
                f"the first is row {rows[0]}"
            )


def _sample_weight(where: str, w: np.ndarray, n: int) -> np.ndarray:
    if w.dtype.kind not in "biuf":
        raise DataError(f"{where}: sample_weight has dtype {w.dtype}, expected numbers")
    if w.shape != (n,):
        raise DataError(f"{where}: sample_weight has shape {w.shape}, expected ({n},): one "
                        "weight per sample")  # fmt: skip
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise DataError(
            f"{where}: sample_weight has {rows.size} weight{'s' * (rows.size > 1)} that are "
            f"not finite numbers >= 0; the first is {w[rows[0]]:g} at row {rows[0]}"
        )
    weights = _float32(where, "sample_weight", w)
    if not weights.astype(np.float64).sum() > 0:
        raise DataError(f"{where}: sample_weight: every weight is 0, so the weighted mean loss "
                        "is undefined")  # fmt: skip
    return weights


def _float32(where: str, which: str, a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = a.astype(np.float32, copy=False)
    # Finite float64 values beyond float32's range would turn into inf silently.
    if not np.isfinite(out).all():
        raise DataError(
            f"{where}: {which} has values beyond the float32 range "
            f"(largest magnitude {np.abs(a).max():g})"
        )
    return out


def _labels(where: str, y: np.ndarray, n_classes: int) -> np.ndarray:
    if not isinstance(n_classes, numbers.Integral) or isinstance(n_classes, bool) or n_classes < 2:
        raise DataError(
            f"{where}: n_classes must be an integer >= 2, or None for regression targets, "
            f"got {n_classes!r}"
        )
    if y.ndim != 1:
        raise DataError(
            f"{where}: class labels y have shape {y.shape}, expected [n]; "
            "pass n_classes=None for regression targets [n, n_out]"
        )
    row = _first_fraction(y)
    if row is not None:
        raise DataError(
            f"{where}: label {y[row]:g} at row {row} is not a whole number; class labels "
            f"are integers in [0, {n_classes - 1}]"
        )
    outside = (y < 0) | (y >= n_classes)
    if outside.any():
        row = int(np.argmax(outside))
        raise DataError(
            f"{where}: label {y[row]:g} at row {row} is out of range for {n_classes} classes "
            f"(labels must lie in [0, {n_classes - 1}])"
        )
    return y.astype(np.int32)


def _first_fraction(y: np.ndarray) -> int | None:
    """The first row of (finite) ``y`` whose value is not a whole number, or ``None``."""
    if y.dtype.kind != "f":
        return None
    whole = y == np.round(y)
    return None if whole.all() else int(np.argmin(whole))


def looks_like_labels(y: np.ndarray) -> bool:
    """A reader's default for ``classification``: ``y`` ``[n]`` of integers, or of floats
    that are all whole numbers >= 0 (``1.0``, ``2.0``: a text file's or a float array's
    labels)."""
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        return False
    if y.dtype.kind != "f":
        return True
    return bool(np.isfinite(y).all() and (y >= 0).all() and _first_fraction(y) is None)


def warn_if_one_class(dataset: Dataset, what: str = "") -> None:
    """A ``DataWarning`` if every label of ``dataset`` is one class: a network trained on
    it learns to answer that class whatever the input."""
    y = dataset.y
    if dataset.n_classes is None or not len(y) or (y != y[0]).any():
        return
    warnings.warn(
        f"dataset {dataset.name!r}{what}: every label is {int(y[0])} (one class of "
        f"{dataset.n_classes}); a network trained on it only learns to answer {int(y[0])}. "
        "Check the target column, or that the file holds every class",
        DataWarning,
        stacklevel=3,
    )


def _count_classes(y: np.ndarray) -> int:
    # The largest label + 1 (at least 2); a bad label is reported by Dataset itself.
    values = y[np.isfinite(y)] if y.dtype.kind in "biuf" else y[:0]
    return max(int(values.max()) + 1, 2) if values.size else 2


def from_arrays(
    name: str, x, y, *, labels: bool, n_classes: int | None, sample_weight=None
) -> Dataset:
    """A ``Dataset`` of a file's arrays: labels ``[n]`` (classes counted unless given) or
    regression targets (``[n]`` becomes ``[n, 1]``), and ``sample_weight`` ``[n]`` or ``None``."""
    x, y = np.asarray(x), np.asarray(y)
    if labels:
        n_classes = _count_classes(y) if n_classes is None else n_classes
        return Dataset(x, y, n_classes, name, sample_weight)
    if n_classes is not None:
        raise DataError(f"{name}: n_classes={n_classes!r} given with classification=False")
    return Dataset(x, y[:, None] if y.ndim == 1 else y, None, name, sample_weight)


def check_fits(data: Dataset | tuple[np.ndarray, np.ndarray], net: MLP) -> None:
    """Raises ``DataError`` naming what in ``data`` does not fit ``net``.

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
        raise DataError(f"check_fits: data must be a Dataset or a pair (x, y), got {data!r}")
    if x.shape[1] != net.sizes[0]:
        raise DataError(
            f"{where}: x has {x.shape[1]} features but the network takes {net.sizes[0]} "
            f"inputs (sizes {net.sizes})"
        )
    n_classes = getattr(data, "n_classes", None)
    if net.cost == "softmax_cross_entropy" and n_classes not in (None, net.sizes[-1]):
        raise DataError(
            f"{where}: the labels have {n_classes} classes but the network has "
            f"{net.sizes[-1]} outputs (sizes {net.sizes}); softmax_cross_entropy needs one "
            "output per class"
        )
    if (
        net.cost == "softmax_cross_entropy"
        and n_classes is None
        and y.ndim == 2
        and y.shape[1] == 1
    ):
        raise DataError(
            f"{where}: {_not_labels(y[:, 0])}; softmax_cross_entropy needs class labels, "
            "whole numbers >= 0 (or use cost mse for regression values)"
        )
    try:
        losses.check_targets(net.resolved_cost, y, (x.shape[0], net.sizes[-1]))
    except ValueError as err:
        raise DataError(f"{where}: {err}") from None


def _not_labels(y: np.ndarray) -> str:
    # Why one column of targets was taken for regression values: the real cause of a
    # classification network's mismatch, rather than its output count.
    row = _first_fraction(y)
    if row is None and (y < 0).any():
        row = int(np.argmax(y < 0))
    if row is not None:
        why = "negative" if y[row] < 0 and y[row] == np.round(y[row]) else "not a whole number"
        return f"target {y[row]:g} at row {row} is {why}, so y was read as regression values"
    return "y holds regression values [n, 1] (classification=False), not class labels"


def is_count(value) -> bool:
    """Whether ``value`` is an integer >= 0 (``True`` and ``False`` are not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0
