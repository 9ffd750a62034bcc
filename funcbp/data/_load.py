"""``load``: a dataset by built-in name, or a user's file or folder by path."""

from __future__ import annotations

import inspect
import os
import pathlib
from collections.abc import Callable

from funcbp.data import _files, _limits
from funcbp.data._builtins import BUILTINS, builtin
from funcbp.data._dataset import Dataset, warn_if_one_class
from funcbp.errors import DataError


def load(source: str | os.PathLike, *, max_bytes: int | None = None, **options) -> Dataset:
    """Loads a built-in dataset by name, or a user's file or folder by path.

    Built-ins (no options): ``"xor"`` (4 x 2, 2 classes), ``"iris"`` (150 x 4, 3
    classes), ``"digits"`` (1797 x 64 pixels 0-16, 10 classes), shipped in
    ``funcbp/datasets/``; ``"regression"``: ``y = sin(x) + 0.1 noise`` for 256
    points ``x`` in ``[-pi, pi]`` (x ``[256, 1]``, y ``[256, 1]``), from a fixed seed.

    Paths (a ``str`` that is not a built-in name, or any ``os.PathLike``):

    * ``*.npz`` with arrays ``x`` ``[n, ...]`` (flattened to ``[n, n_features]``) and
      ``y``. Options: ``classification`` (default: ``y`` is 1-D integer, or float
      and every value a whole number >= 0),
      ``n_classes`` (default: largest label + 1), ``sample_weight`` (the name of a
      member holding one weight per sample ``[n]``; default: none is read).
    * ``*.csv``, numeric, one sample a line. Options: ``target_column`` (index or
      header name, default ``-1``; the other columns are ``x``), ``header`` (default:
      the first line is a header if any of its cells is not a number),
      ``classification`` (default: every target is a whole number >= 0),
      ``n_classes``, ``sample_weight`` (index or header name of a column of weights,
      one per sample, which is then not a feature; default: none).
    * a folder of MNIST-format IDX files, ``train-images-idx3-ubyte`` and
      ``train-labels-idx1-ubyte`` (``t10k-...`` for the test set; ``.gz`` or plain;
      ``train-images.idx3-ubyte`` spellings too). Images are flattened to ``[n, rows *
      cols]``, values kept as stored (0-255). Options: ``subset`` (``"train"`` or
      ``"test"``), ``n_classes`` (default: largest label + 1).

    Regression targets from files are ``[n, 1]`` float32 (or ``[n, n_out]`` as stored).

    ``max_bytes`` bounds what a file may make the reader allocate: the file's size and
    the sizes its headers declare (``.npz`` arrays, IDX values, a CSV's values as
    float64) are checked against it before reading, and compressed streams are read
    no further than declared. Default: half the memory the host has available now
    (``MemAvailable``; 4 GiB where it does not say). A path that is not a regular
    file (a FIFO, a link to ``/dev/zero``) is refused. Labels that are all one class
    warn (``DataWarning``).

    Raises:
      DataError: an unknown name (the message lists the built-ins), a missing or
        unreadable file, an option the source does not take, a file or declared
        array over ``max_bytes``, or invalid data (see ``Dataset``).
    """
    limit = _limits.resolve(max_bytes)
    if isinstance(source, str) and source in BUILTINS:
        where, loader, arg = f"built-in dataset {source!r}", builtin, source
    elif not isinstance(source, str | os.PathLike):
        raise DataError(f"load: expected a dataset name or a path, got {source!r}")
    else:
        path = pathlib.Path(source)
        loaders = {".npz": _files.read_npz, ".csv": _files.read_csv}
        if path.is_dir():
            loader = _files.read_idx_folder
        elif path.suffix.lower() in loaders:
            loader = loaders[path.suffix.lower()]
        else:
            raise DataError(
                f"unknown dataset {os.fspath(source)!r}; built-in names: {', '.join(BUILTINS)}; "
                "or give a .npz or .csv file, or a folder of MNIST-format IDX files"
            )
        if not path.exists():
            raise DataError(f"{path}: no such file")
        where, arg = str(path), path
    _check_options(where, loader, options)
    if loader is not builtin:  # the shipped sets are small
        options["max_bytes"] = limit
    try:
        dataset = loader(arg, **options)
    except OSError as err:  # there, but not readable: permissions, a directory, a device error
        raise DataError(f"{where}: cannot read it ({err})") from None
    warn_if_one_class(dataset)
    return dataset


def _check_options(where: str, loader: Callable, options: dict) -> None:
    valid = [
        name
        for name, param in inspect.signature(loader).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY and name != "max_bytes"  # load's own
    ]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DataError(
            f"load: {where} takes no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid) or 'none'}"
        )
    for name in ("header", "classification"):  # None: decided from the data
        if not isinstance(options.get(name), bool | None):
            raise DataError(
                f"load: option {name} must be True, False or None, got {options[name]!r}"
            )
