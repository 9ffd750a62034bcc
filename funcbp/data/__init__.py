"""Datasets as validated host (numpy) arrays: built-ins, user files, a teacher, splits.

Everything here runs before any compilation and imports no JAX. A ``Dataset`` is
checked once, when it is made, so that a NaN, a label out of range or a length
mismatch is reported by one ``funcbp.DataError`` naming the array and the first
bad row, not as a shape error inside ``jit``; ``check_fits`` then checks it
against a network::

    data = load("iris")          # "xor", "digits", "regression", a .npz or .csv file,
                                 # or a folder of MNIST-format IDX files
    parts, stats = standardize(split(data, seed=0))   # mean/std of parts.train only
    check_fits(parts.train, MLP((4, 16, 3), cost="softmax_cross_entropy"))

The pieces: ``_dataset`` (the type and its checks), ``_load`` and ``_files`` (by
name or path; ``idx`` reads one IDX file), ``_limits`` (the size limit ``max_bytes``,
checked before reading or allocating), ``_builtins`` (the shipped sets and
``teacher``), ``_splits`` (``split``, ``standardize``), ``_weights`` (``class_weights``:
one weight per class, for ``Dataset.weighted_by_class``). A ``Dataset`` may carry one
``sample_weight`` per row (a ``.npz`` member or CSV column: ``load(path,
sample_weight=...)``); every split and subset keeps each weight with its row.
"""

from funcbp.data import idx
from funcbp.data._builtins import BUILTINS, teacher
from funcbp.data._dataset import Dataset, DataWarning, check_fits
from funcbp.data._load import load
from funcbp.data._splits import Splits, Standardizer, split, standardize
from funcbp.data._weights import class_weights

__all__ = [
    "BUILTINS",
    "DataWarning",
    "Dataset",
    "Splits",
    "Standardizer",
    "check_fits",
    "class_weights",
    "idx",
    "load",
    "split",
    "standardize",
    "teacher",
]
