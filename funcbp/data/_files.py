"""The file readers ``load`` dispatches to: ``.npz``, ``.csv`` and folders of IDX files.

Each takes its options as keywords (``load`` lists them from the signature) and
raises ``DataError`` naming the file, and the line or array, that is wrong.
"""

from __future__ import annotations

import csv
import itertools
import math
import numbers
import pathlib
import zipfile
import zlib

import numpy as np

from funcbp.data import idx
from funcbp.data._dataset import Dataset, from_arrays
from funcbp.errors import DataError


def read_npz(
    path: pathlib.Path, *, classification: bool | None = None, n_classes: int | None = None
) -> Dataset:
    try:
        arrays = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    if not isinstance(arrays, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds one .npy array, expected an .npz with arrays 'x' and 'y'")
    with arrays:
        if not {"x", "y"} <= set(arrays.files):
            found = ", ".join(repr(key) for key in sorted(arrays.files)) or "none"
            raise DataError(f"{path}: needs arrays named 'x' and 'y', found keys {found}")
        try:  # each array is read (and its checksum checked) only now
            x, y = arrays["x"], arrays["y"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            raise DataError(f"{path}: arrays 'x' and 'y' are not readable ({err})") from None
    if x.ndim > 2:
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
    if classification is None:
        classification = n_classes is not None or (y.ndim == 1 and y.dtype.kind in "biu")
    return from_arrays(path.name, x, y, labels=classification, n_classes=n_classes)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(
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
            raise DataError(f"{path}: not UTF-8 text ({err})") from None
        except csv.Error as err:
            raise DataError(f"{path}: line {reader.line_num}: {err}") from None
    if not lines:
        raise DataError(f"{path}: no rows (the data are empty)")
    if header is None:
        header = not all(_is_number(cell) for cell in lines[0][1])
    names, width = (lines[0][1] if header else None), len(lines[0][1])
    if width < 2:
        raise DataError(f"{path}: needs at least 2 columns (features and a target), found 1")
    target = _target_index(path, target_column, names, width)
    rows = []
    for line, cells in lines[1:] if header else lines:
        if len(cells) != width:
            raise DataError(f"{path}: line {line} has {len(cells)} cells, expected {width}")
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError:
            column, cell = next((j, c) for j, c in enumerate(cells) if not _is_number(c))
            raise DataError(
                f"{path}: line {line}, column {column + 1}: {cell!r} is not a number"
            ) from None
    if not rows:
        raise DataError(f"{path}: no data rows after the header (the data are empty)")
    values = np.array(rows)
    x, y = np.delete(values, target, axis=1), values[:, target]
    if classification is None:
        whole = np.isfinite(y).all() and (y >= 0).all() and (y == np.round(y)).all()
        classification = n_classes is not None or bool(whole)
    return from_arrays(path.name, x, y, labels=classification, n_classes=n_classes)


def _target_index(
    path: pathlib.Path, column: int | str, names: list[str] | None, width: int
) -> int:
    if isinstance(column, str):
        if names is None:
            raise DataError(
                f"{path}: target_column={column!r} names a column but there is no header"
            )
        if column not in names:
            raise DataError(f"{path}: no column named {column!r}; columns: {', '.join(names)}")
        return names.index(column)
    if not isinstance(column, numbers.Integral) or isinstance(column, bool):
        raise DataError(f"{path}: target_column must be a column index or name, got {column!r}")
    if not -width <= column < width:
        raise DataError(f"{path}: target_column {column} is out of range for {width} columns")
    return int(column) % width


def read_idx_folder(
    folder: pathlib.Path, *, subset: str = "train", n_classes: int | None = None
) -> Dataset:
    prefixes = {"train": "train", "test": "t10k"}
    if subset not in prefixes:
        raise DataError(f"{folder}: subset must be 'train' or 'test', got {subset!r}")
    images = idx.read(_idx_file(folder, prefixes[subset], "images", 3))
    labels = idx.read(_idx_file(folder, prefixes[subset], "labels", 1))
    x = images.reshape(images.shape[0], math.prod(images.shape[1:]))
    name = f"{folder.resolve().name}/{subset}"
    return from_arrays(name, x, labels, labels=True, n_classes=n_classes)


def _idx_file(folder: pathlib.Path, prefix: str, kind: str, ndim: int) -> pathlib.Path:
    stems = (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte")
    for stem, suffix in itertools.product(stems, ("", ".gz")):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    raise DataError(f"{folder}: no MNIST-format {kind} file {stems[0]}[.gz]")
