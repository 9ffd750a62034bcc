"""Training and evaluation data as ``fit`` takes them: checked on the host, then placed.

A data set is a ``funcbp.data.Dataset`` (weighted when its ``sample_weight`` is
set), an ``(x, y)`` pair or an ``(x, y, sample_weight)`` triple of arrays, or
global arrays already split by rows (``sharding.rows_from_processes``). Sample
weights ``[n]`` are checked here once, before anything is compiled (finite,
``>= 0``, not all zero), then travel with the rows: split over the devices as
the targets are (padding rows weigh 0), and sliced by the same permutation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from funcbp import data as _data
from funcbp import sharding
from funcbp.errors import DataError
from funcbp.mlp import MLP, check_sample_weight

Array = jax.Array
Arrays = tuple[Any, Any, Any]  # (x, y, sample_weight or None)


def checked_arrays(dataset, net: MLP, what: str, sample_weight=None) -> Arrays:
    """``(x, y, sample_weight)`` of a data set, refused (``DataError``) unless they fit ``net``.

    ``sample_weight``: weights given beside ``dataset`` (``fit(..., sample_weight=w)``),
    refused when ``dataset`` carries its own. Host data comes back as NumPy arrays
    (``sample_weight`` as float64, or ``None``). Global arrays split by rows stay where
    they are; the rows this process holds are the ones checked.
    """
    if sharding.is_split_rows(dataset):  # never a Dataset: not a pytree of jax.Arrays
        if len(dataset) not in (2, 3):
            raise DataError(f"{what}: split rows must be (x, y) or (x, y, sample_weight)")
        x, y, w = (*dataset, None)[:3]
        _data.check_fits((sharding.local_rows(x), sharding.local_rows(y)), net)
        w = _given_once(what, w, sample_weight)
        if w is not None:
            _check_weights(what, sharding.local_rows(w), len(sharding.local_rows(x)))
        return x, y, w
    if isinstance(dataset, _data.Dataset):
        x, y, w = dataset.x, dataset.y, getattr(dataset, "sample_weight", None)
        _data.check_fits(dataset, net)
    else:
        if (
            isinstance(dataset, str | bytes)
            or not isinstance(dataset, Sequence | np.ndarray)
            or len(dataset) not in (2, 3)
        ):
            raise DataError(
                f"{what} must be a funcbp.data.Dataset or an (x, y) pair of arrays, got "
                f"{type(dataset).__name__} (an (x, y, sample_weight) triple weighs the rows)"
            )
        x, y, w = (*dataset, None)[:3]
        x, y, w = np.asarray(x), np.asarray(y), None if w is None else np.asarray(w)
        _data.check_fits((x, y), net)
    w = _given_once(what, w, sample_weight)
    if w is not None:
        w = _check_weights(what, w, len(x))
    return x, y, w


def _given_once(what: str, carried, given):
    if carried is not None and given is not None:
        raise DataError(
            f"{what}: sample_weight given twice (the data carry weights, and sample_weight= "
            "gives them again); give them once"
        )
    return carried if given is None else given


def _check_weights(what: str, weights, n: int) -> np.ndarray:
    """``weights`` as float64, refused (``DataError`` naming ``sample_weight``) unless
    ``[n]`` finite numbers ``>= 0``, not all zero (``mlp.check_sample_weight``)."""
    try:
        check_sample_weight(weights, n)
    except ValueError as err:
        raise DataError(f"{what}: {err}") from None
    return np.asarray(weights, np.float64)


def inputs_in_dtype(x, y, dtype, place: Callable) -> tuple[Array, Array]:
    """Inputs (and targets, unless integer labels) in ``dtype`` on the devices, as ``fit`` has them.

    Host arrays are cast on the host, then ``place``d; global arrays are cast where they are.
    """
    if isinstance(x, jax.Array):  # already placed: sharding.rows_from_processes
        return x.astype(dtype), y if y.ndim == 1 else y.astype(dtype)
    return place((np.asarray(x, dtype), y if y.ndim == 1 else np.asarray(y, dtype)))


def weights_in_dtype(weights, dtype, place: Callable) -> Array | None:
    """Sample weights ``[n]`` in ``dtype`` on the devices (``None`` stays ``None``)."""
    if weights is None:
        return None
    if isinstance(weights, jax.Array):
        return weights.astype(dtype)
    return place(np.asarray(weights, dtype))


def placed(arrays: Arrays, dtype, mesh: Mesh | None) -> tuple[Array, Array, Array | None]:
    """``(x, y, sample_weight or None)`` in ``dtype``, split by rows over ``mesh`` (padded
    to divide: padding rows weigh 0)."""
    x, y, w = arrays
    place = functools.partial(sharding.split_rows, mesh=mesh)
    return (*inputs_in_dtype(x, y, dtype, place), weights_in_dtype(w, dtype, place))


def eval_sets_on_devices(
    eval_arrays: Mapping[str, tuple], dtype, mesh: Mesh | None
) -> tuple[tuple[tuple[str, int], ...], dict[str, tuple]]:
    """Evaluation sets ``{name: (x, y)}`` (or ``(x, y, sample_weight)``) as ``fit`` holds
    them: ``(rows, on_devices)``.

    ``on_devices``: each set in ``dtype`` (``inputs_in_dtype``), split by rows over
    the devices and padded to divide, so each device evaluates its share; a
    weighted set keeps its weights (``(x, y, w)``; its loss is their weighted mean).
    ``rows``: ``((name, n), ...)``, each set's real rows, for ``evaluate_sets``.
    """
    rows = tuple((name, len(arrays[0])) for name, arrays in eval_arrays.items())
    on_devices = {}
    for name, arrays in eval_arrays.items():
        x, y, w = placed((*arrays, None)[:3], dtype, mesh)
        on_devices[name] = (x, y) if w is None else (x, y, w)
    return rows, on_devices
