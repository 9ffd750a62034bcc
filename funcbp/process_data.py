"""Data that each process of a ``jax.distributed`` run loads for itself: one file per process.

A data source that names ``{process}`` (``shards/part-{process}.npz``) stands for
one file per process, ``{process}`` being ``jax.process_index()``. Each process
reads only its own file and splits it with the run's seed. Then, together:

* the features must agree, and the classes are those of all files;
* every part is cut to the number of rows of the process that has fewest (a
  multiple of the local device count), since each process must hold as many;
* standardisation uses the mean and standard deviation of all processes'
  training rows, as a one-process run over all files would;
* ``global_parts`` joins the parts into global arrays split by rows
  (``sharding.rows_from_processes``), which ``fit`` trains on as they are.

Process 0's rows come first, then process 1's, and so on. One process alone
reads ``{process}`` = 0, and all of this reduces to its own data.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from funcbp import data as _data
from funcbp import sharding
from funcbp.errors import DataError

PLACEHOLDER = "{process}"


def is_per_process(source: str) -> bool:
    """Whether ``source`` is one file per process."""
    return PLACEHOLDER in source


def own_source(source: str) -> str:
    """``source`` with ``{process}`` replaced by this process's index."""
    return source.replace(PLACEHOLDER, str(jax.process_index()))


def agree_on_shape(dataset: _data.Dataset) -> _data.Dataset:
    """``dataset`` with the classes of all processes' files; ``DataError`` on other widths.

    Raised in every process alike: the checks compare values every process gathered.
    """
    classes = dataset.n_classes
    # Classification: the label range may differ per file; regression: the target width may not.
    width = -1 if classes is not None else dataset.n_outputs
    shapes = sharding.from_every_process(np.array([dataset.n_features, width, classes or 0]))
    for what, column in (("features", 0), ("targets", 1)):
        if len(set(shapes[:, column].tolist())) > 1:
            raise DataError(
                f"data.source: the processes' files have different numbers of {what}: "
                + ", ".join(f"{n} in process {i}'s" for i, n in enumerate(shapes[:, column]))
            )
    if classes is None:
        return dataset
    return dataclasses.replace(dataset, n_classes=int(shapes[:, 2].max()))


def equal_parts(splits: _data.Splits) -> _data.Splits:
    """Every part cut to the fewest rows any process has of it.

    The counts are multiples of the local device count, so each device holds as many.
    """
    local = jax.local_device_count()
    counts = [0 if part is None else len(part) for part in splits]
    fewest = sharding.from_every_process(np.array(counts)).min(axis=0)
    parts = []
    for part, least in zip(splits, fewest.tolist(), strict=True):
        keep = least // local * local
        if part is not None and keep == 0:
            raise DataError(
                f"data.source: the {part.name} part has {least} rows in some process, "
                f"fewer than its {local} devices"
            )
        parts.append(None if part is None else _take_first(part, keep))
    return _data.Splits(*parts)


def _take_first(dataset: _data.Dataset, rows: int) -> _data.Dataset:
    return dataclasses.replace(dataset, x=dataset.x[:rows], y=dataset.y[:rows])


def standardize(splits: _data.Splits) -> tuple[_data.Splits, _data.Standardizer]:
    """Every part standardised with the statistics of all processes' training rows, and
    those statistics."""
    x = splits.train.x.astype(np.float64)
    count_and_sum = sharding.from_every_process(np.concatenate([[len(x)], x.sum(axis=0)]))
    mean = count_and_sum[:, 1:].sum(axis=0) / count_and_sum[:, 0].sum()
    extremes = sharding.from_every_process(np.stack([x.min(axis=0), x.max(axis=0)]))
    squares = sharding.from_every_process(((x - mean) ** 2).sum(axis=0)).sum(axis=0)
    std = np.sqrt(squares / count_and_sum[:, 0].sum())
    constant = extremes[:, 0].min(axis=0) == extremes[:, 1].max(axis=0)
    return _data.standardize(splits, _data.Standardizer.from_moments(mean, std, constant))


def global_parts(parts: dict[str, _data.Dataset]) -> dict[str, tuple[Any, Any]]:
    """``{name: (x, y)}``: each part joined over the processes, split by rows."""
    return {name: sharding.rows_from_processes((part.x, part.y)) for name, part in parts.items()}
