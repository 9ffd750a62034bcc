"""A run's sample and class weights: ``data.sample_weight`` and ``train.class_weight``.

``data.sample_weight`` names where a file keeps one weight per sample (a ``.npz``
member or a CSV column); every split keeps each row's weight, so the training
loss and the validation and test losses are weighted means. ``train.class_weight``
(``"balanced"``, fitted on the training split, or a table ``{class = weight}``)
multiplies the weights of the training split only, as scikit-learn's and Keras'
``class_weight`` do: the evaluation sets keep their own weights (or none), so
their losses measure the data as they are.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from funcbp import data as _data
from funcbp.errors import ConfigError, DataError


def check_table(key: str, table: Mapping[str, Any]) -> dict[str, float]:
    """A ``{class = weight}`` table as ``{"<class>": weight}``: class indices >= 0 as keys,
    finite weights >= 0 (which classes exist is known only with the data)."""
    checked = {}
    for name, weight in table.items():
        if not (isinstance(name, str) and name.strip().isdigit()):
            raise ConfigError(f"{key}: {name!r} is not a class index (an integer >= 0)")
        real = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
        if not (real and math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"{key}: class {name} has weight {weight!r}; expected a finite "
                              "number >= 0")  # fmt: skip
        checked[str(int(name))] = float(weight)
    if not checked:
        raise ConfigError(f'{key}: the table is empty; give {{"0" = 2.0, ...}}, or "balanced"')
    return checked


def check_config(source: str, sample_weight: str | int, class_weight, per_process: bool) -> None:
    """Refuses weights where the data cannot have them (``ConfigError``)."""
    if sample_weight != "" and (source in _data.BUILTINS or source == "teacher"):
        raise ConfigError(f"data.sample_weight: the {source!r} data have no sample weights; it "
                          "names an array of a .npz file or a column of a .csv file")  # fmt: skip
    if class_weight not in ("", "balanced") and isinstance(class_weight, str):
        raise ConfigError(f'train.class_weight: unknown value {class_weight!r}; valid: "balanced" '
                          'or a table {"0" = 2.0, ...}; "" (off)')  # fmt: skip
    if per_process and (sample_weight != "" or class_weight != ""):
        which = "data.sample_weight" if sample_weight != "" else "train.class_weight"
        raise ConfigError(f"{which}: weights are not supported yet with one data file per "
                          "process (data.source naming {process})")  # fmt: skip


def weigh_classes(splits: _data.Splits, class_weight) -> _data.Splits:
    """``splits`` with the training split's weights multiplied by its class weights.

    Raises:
      ConfigError: naming ``train.class_weight``: regression data, or a class that
        does not exist.
    """
    if class_weight == "":
        return splits
    train = splits.train
    if train.n_classes is None:
        raise ConfigError(f"train.class_weight: class weights need class labels; the data "
                          f"{train.name!r} are regression targets")  # fmt: skip
    try:
        factors = _data.class_weights(train.y, train.n_classes, class_weight)
        return splits._replace(train=train.weighted_by_class(factors))
    except DataError as err:
        raise ConfigError(f"train.class_weight: {err}") from None


def describe(splits: _data.Splits, sample_weight: str | int, class_weight) -> dict[str, str]:
    """``{split: how its loss is weighted}`` for the splits whose loss is weighted."""
    shown = {}
    for part, dataset in zip(splits._fields, splits, strict=True):
        if dataset is None or dataset.sample_weight is None:
            continue
        how = [f"data.sample_weight = {sample_weight!r}"] if sample_weight != "" else []
        if part == "train" and class_weight != "":
            how.insert(0, f"train.class_weight = {class_weight!r}")
        shown[part] = "weighted mean: " + " x ".join(how)
    return shown
