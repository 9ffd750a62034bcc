"""The comparison: candidates, a reference and finite differences become a report's rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from funcbp.gradcheck._finite_differences import Differences, LeafDifferences
from funcbp.gradcheck._report import (
    FD,
    ROUNDING_MARGIN,
    TOLERANCES,
    ErrorStats,
    GradientReport,
    Row,
)
from funcbp.gradcheck._trees import caller_dtype, leaf_paths, to_numpy

_TINY = np.finfo(np.float64).tiny


def compare(
    title: str,
    mode: str,
    step: float,
    wrt,
    candidates: dict[str, tuple[Any, Any]],
    reference: str,
    differences: Differences,
) -> GradientReport:
    """The report for ``candidates`` ``{name: (caller dtype, float64)}``, pytrees like ``wrt``.

    Each candidate but ``reference`` (autodiff) is compared with it, leaf by leaf; then
    every candidate is compared with the finite ``differences`` of ``wrt``'s leaves:
    elementwise where they are per element, along their directions where they are
    directional.
    """
    dtype = caller_dtype(wrt)
    paths = leaf_paths(wrt)
    values = {name: (to_numpy(low), to_numpy(high)) for name, (low, high) in candidates.items()}
    ref64 = values[reference][1]
    tol_low = caller_tolerances(*values[reference], dtype)
    rows: list[Row] = []
    for name, (low, high) in values.items():
        if name == reference:
            continue
        for i, path in enumerate(paths):
            scale = scale_of(ref64[i])
            rows.append(
                Row(
                    path,
                    name,
                    reference,
                    _stats(low[i], ref64[i], scale),
                    _stats(high[i], ref64[i], scale),
                    tol_low[i],
                    TOLERANCES["analytic"],
                    0,
                )
            )
    for name, (low, high) in values.items():
        for i, (path, fd) in enumerate(zip(paths, differences.leaves, strict=True)):
            tolerance = max(TOLERANCES["finite_difference"], tol_low[i])
            compare_fd = _along_directions if fd.directions is not None else _per_element
            errors, resolution = compare_fd(low[i], high[i], ref64[i], fd)
            rows.append(
                Row(
                    path,
                    name,
                    FD,
                    *errors,
                    tolerance + resolution,
                    TOLERANCES["finite_difference"] + resolution,
                    int(np.sum(fd.kinks)),
                )
            )
    return GradientReport(title, mode, dtype, step, tuple(rows), differences.evaluations)


def _per_element(low, high, ref64, fd: LeafDifferences):
    """Both precisions' errors against elementwise differences, and their resolution."""
    keep = ~fd.kinks
    # Scaled by the analytic gradient too: finite differences of a vanishing one are
    # rounding noise, which alone would make any error look huge.
    scale = max(scale_of(fd.values[keep]), scale_of(ref64[keep]))
    masked = (np.where(keep, a, fd.values) for a in (low, high))
    errors = tuple(_stats(a, fd.values, scale) for a in masked)
    return errors, float(np.max(fd.noise, initial=0.0)) / scale


def _along_directions(low, high, ref64, fd: LeafDifferences):
    """Both precisions' errors in the directional derivatives ``<g, v>``, and their resolution."""
    # |<g, v>| for a random unit v is about ||g|| / sqrt(n): the scale to compare with.
    norm = max(float(np.linalg.norm(ref64)) / math.sqrt(max(ref64.size, 1)), _TINY)
    errors = []
    for g in (low, high):
        projected = fd.directions @ g.reshape(-1)
        diff = np.where(fd.kinks, 0.0, np.abs(projected - fd.values))
        worst = int(np.argmax(diff))
        errors.append(
            ErrorStats(
                float(diff[worst]),
                float(diff[worst]) / norm,
                None,
                float(projected[worst]),
                float(fd.values[worst]),
            )
        )
    return tuple(errors), float(np.max(fd.noise, initial=0.0)) / norm


def caller_tolerances(low: list, high: list, dtype: str) -> list[float]:
    """Per leaf, the threshold for a candidate evaluated in the caller's ``dtype``.

    That dtype's rounding threshold, or ``ROUNDING_MARGIN`` times the reference's own
    error there (``low`` against ``high``, its float64 value) when it is larger (a
    saturated tanh in float32, say): an error as large as autodiff's own in that dtype
    is the dtype's, not the candidate's.
    """
    return [
        max(
            TOLERANCES[dtype],
            TOLERANCES["analytic"],
            ROUNDING_MARGIN * _stats(a, b, scale_of(b)).max_rel,
        )
        for a, b in zip(low, high, strict=True)
    ]


def scale_of(reference: np.ndarray) -> float:
    """``max |reference|``: what a normwise error is relative to (never 0)."""
    return max(float(np.max(np.abs(reference), initial=0.0)), _TINY)


def _stats(got: np.ndarray, want: np.ndarray, scale: float) -> ErrorStats:
    diff = np.abs(got - want)
    if diff.size == 0:
        return ErrorStats(0.0, 0.0, None, 0.0, 0.0)
    flat = int(np.argmax(diff))
    index = tuple(int(i) for i in np.unravel_index(flat, diff.shape))
    max_abs = float(diff.reshape(-1)[flat])
    return ErrorStats(
        max_abs, max_abs / scale, index, float(got.reshape(-1)[flat]), float(want.reshape(-1)[flat])
    )
