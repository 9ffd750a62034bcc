"""Class weights: one weight per class, from a rule (``"balanced"``) or a table."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from funcbp.data._dataset import is_count
from funcbp.errors import DataError


def class_weights(
    labels: np.ndarray, n_classes: int, spec: str | Mapping[int | str, float]
) -> np.ndarray:
    """The weight of each class, ``[n_classes]`` float32, for ``Dataset.weighted_by_class``.

    ``spec`` is ``"balanced"``, scikit-learn's rule ``n_samples / (n_present *
    bincount(labels))`` (``n_present``: the classes that occur in ``labels``, so that
    the mean weight over the samples is 1; it is ``n_classes`` when every class
    occurs, as in ``sklearn.utils.class_weight.compute_class_weight``; a class with
    no sample gets 0), or a table ``{class: weight}`` whose keys are class indices
    (ints, or strings of them as a TOML table has) and whose weights are finite
    numbers ``>= 0``; classes it does not list weigh 1.

    Args:
      labels: the class labels ``[n]`` to fit ``"balanced"`` on (the training split's).
      n_classes: the number of classes, at least 2.
      spec: ``"balanced"`` or a table, as above.

    Raises:
      DataError: an unknown rule, a table key that is not a class in
        ``[0, n_classes - 1]`` (the message names it), a weight that is negative or
        not finite, or labels that are not ``[n]`` integers in range.
    """
    if not is_count(n_classes) or n_classes < 2:
        raise DataError(f"class_weights: n_classes must be an integer >= 2, got {n_classes!r}")
    if isinstance(spec, str):
        if spec != "balanced":
            raise DataError(f"class weights: unknown rule {spec!r}; use \"balanced\" or a table "
                            "{class: weight}")  # fmt: skip
        return _balanced(np.asarray(labels), n_classes)
    if not isinstance(spec, Mapping):
        raise DataError(f"class weights: expected \"balanced\" or a table {{class: weight}}, "
                        f"got {spec!r}")  # fmt: skip
    weights = np.ones(n_classes, np.float64)
    for key, weight in spec.items():
        weights[_class_index(key, n_classes)] = _weight(key, weight)
    return weights.astype(np.float32)


def _balanced(labels: np.ndarray, n_classes: int) -> np.ndarray:
    whole = labels.dtype.kind in "iu" or (labels.dtype.kind == "f" and (labels % 1 == 0).all())
    if labels.ndim != 1 or not labels.size or not whole:
        raise DataError(f"class weights \"balanced\": expected class labels [n], got an array "
                        f"of shape {labels.shape} and dtype {labels.dtype}")  # fmt: skip
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= n_classes:
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise DataError(f"class weights \"balanced\": label {bad} is not a class in "
                        f"[0, {n_classes - 1}]")  # fmt: skip
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = int((counts > 0).sum())
    with np.errstate(divide="ignore"):
        weights = np.where(counts > 0, labels.size / (present * counts), 0.0)
    return weights.astype(np.float32)


def _class_index(key: int | str, n_classes: int) -> int:
    text = isinstance(key, str) and key.strip().isdigit()
    index = int(key) if text or is_count(key) else None
    if index is None or not 0 <= index < n_classes:
        raise DataError(f"class weights: class {key!r} does not exist; the classes are "
                        f"0 to {n_classes - 1}")  # fmt: skip
    return index


def _weight(key: int | str, weight) -> float:
    real = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
    if not (real and math.isfinite(weight) and weight >= 0):
        raise DataError(f"class weights: class {key!r} has weight {weight!r}; weights must be "
                        "finite numbers >= 0")  # fmt: skip
    return float(weight)
