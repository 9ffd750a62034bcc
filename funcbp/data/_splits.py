"""Splits of one dataset (seeded, disjoint) and standardisation fitted on the training part."""

from __future__ import annotations

import dataclasses
import json
import numbers
from typing import NamedTuple

import numpy as np

from funcbp.data._dataset import Dataset, is_count, warn_if_one_class
from funcbp.errors import DataError


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
      ``Splits(train, validation, test)``, named ``"<name>[train]"`` and so on, each
      sample with its ``sample_weight`` (if the dataset has weights). A
      training part of one class (from a set of more) warns (``DataWarning``).
    """
    for what, fraction in (("validation", validation), ("test", test)):
        if not isinstance(fraction, numbers.Real) or not 0 <= fraction < 1:
            raise DataError(f"split: {what} must be a fraction in [0, 1), got {fraction!r}")
    if not is_count(seed):
        raise DataError(f"split: seed must be a non-negative integer, got {seed!r}")
    n = len(dataset)
    n_test, n_val = (max(1, round(f * n)) if f > 0 else 0 for f in (test, validation))
    if n_test + n_val >= n:
        raise DataError(
            f"split: {n} samples leave no training data after {n_test} test and {n_val} "
            f"validation samples (test={test}, validation={validation})"
        )
    order = np.random.default_rng(seed).permutation(n)
    parts = Splits(
        train=_take(dataset, order[n_test + n_val :], "train"),
        validation=_take(dataset, order[n_test : n_test + n_val], "validation"),
        test=_take(dataset, order[:n_test], "test"),
    )
    if dataset.n_classes is not None and (dataset.y != dataset.y[0]).any():
        # One class in the whole set was warned of by load; here, one the split made.
        warn_if_one_class(parts.train, " (the other classes went to validation and test)")
    return parts


def _take(dataset: Dataset, rows: np.ndarray, part: str) -> Dataset | None:
    return dataset.subset(rows, part) if rows.size else None


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

    def to_json(self) -> str:
        """The statistics as JSON text (each float32 exactly: a float64 holds it)."""
        return json.dumps({"mean": self.mean.tolist(), "std": self.std.tolist()}) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "standardizer") -> Standardizer:
        """What ``to_json`` wrote; ``DataError`` naming ``where`` for anything else."""
        try:
            stats = json.loads(text)
            mean, std = (np.asarray(stats[k], np.float32) for k in ("mean", "std"))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{where} is damaged ({type(err).__name__}: {err})") from None
        if mean.ndim != 1 or mean.shape != std.shape or not (np.isfinite(mean).all() and
                                                           (std > 0).all()):  # fmt: skip
            raise DataError(f"{where} is damaged: expected a mean and a positive std per feature")
        return cls(mean, std)

    def apply(self, dataset: Dataset) -> Dataset:
        """``dataset`` with ``x`` standardised; ``y`` is left as it is."""
        if dataset.n_features != self.mean.shape[0]:
            raise DataError(
                f"dataset {dataset.name!r} has {dataset.n_features} features but the "
                f"standardizer was fitted on {self.mean.shape[0]}"
            )
        return dataclasses.replace(dataset, x=self.transform(dataset.x))

    def transform(self, x):
        """``(x - mean) / std`` of inputs ``[n, n_features]`` (NumPy or traced JAX arrays)."""
        return (x - self.mean[None, :]) / self.std[None, :]


def standardize(splits: Splits, stats: Standardizer | None = None) -> tuple[Splits, Standardizer]:
    """Standardises every part with ``stats``, by default those of ``splits.train`` only.

    Returns:
      The standardised splits and the ``Standardizer``, to apply to later data.
    """
    if stats is None:
        stats = Standardizer.fit(splits.train)
    return Splits(*(None if part is None else stats.apply(part) for part in splits)), stats
