"""The file readers ``load`` dispatches to: ``.npz``, ``.csv`` and folders of IDX files.

Each takes its options as keywords (``load`` lists them from the signature) and
``load``'s ``max_bytes``, and raises ``DataError`` naming the file, and the line or
array, that is wrong. Sizes are checked before reading (``_limits``).
"""

from __future__ import annotations

import array
import csv
import io
import itertools
import math
import numbers
import pathlib
import zipfile
import zlib
from collections.abc import Iterator

import numpy as np

from funcbp.data import _limits, idx
from funcbp.data._dataset import Dataset, from_arrays, looks_like_labels
from funcbp.errors import DataError

_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def read_npz(
    path: pathlib.Path,
    *,
    classification: bool | None = None,
    n_classes: int | None = None,
    sample_weight: str | None = None,
    max_bytes: int,
) -> Dataset:
    with _limits.open_regular(path, max_bytes) as f:
        if f.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
            raise DataError(
                f"{path}: holds one .npy array, expected an .npz with arrays 'x' and 'y'"
            )
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as archive:
                x, y, *weights = _npz_arrays(path, archive, max_bytes, sample_weight)
        except DataError:
            raise
        except _UNREADABLE as err:
            raise DataError(f"{path}: not a readable .npz file ({err})") from None
    if x.ndim > 2:
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))
    if classification is None:
        classification = n_classes is not None or looks_like_labels(y)
    return from_arrays(path.name, x, y, labels=classification, n_classes=n_classes,
                       sample_weight=weights[0] if weights else None)  # fmt: skip


def _npz_arrays(
    path: pathlib.Path, archive: zipfile.ZipFile, max_bytes: int, weight: str | None = None
) -> list[np.ndarray]:
    """Arrays ``x``, ``y`` and, if ``weight`` names one, that member."""
    # Members "x.npy" and "y.npy" (or "x" and "y"), as np.load names them.
    members = {name.removesuffix(".npy"): name for name in archive.namelist()}
    if not {"x", "y"} <= set(members):
        found = ", ".join(repr(key) for key in sorted(members)) or "none"
        raise DataError(f"{path}: needs arrays named 'x' and 'y', found keys {found}")
    if weight is not None and (not isinstance(weight, str) or weight not in members):
        found = ", ".join(repr(key) for key in sorted(members))
        raise DataError(f"{path}: sample_weight={weight!r} names no array; found keys {found}")
    keys = ["x", "y"] + ([weight] if weight is not None else [])
    infos = [archive.getinfo(members[key]) for key in keys]
    headers = [_npy_header(path, archive, info) for info in infos]
    declared = " and ".join(f"{k!r} {d} {list(s)}" for k, (s, d) in zip(keys, headers, strict=True))
    n_bytes = sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers)
    _limits.check_size(f"{path}: arrays {declared} need", n_bytes, max_bytes)
    arrays = []
    for info in infos:
        try:  # read (and its checksum checked) only now; the size is known to be the member's
            with archive.open(info) as member:
                arrays.append(np.lib.format.read_array(member, allow_pickle=False))
        except _UNREADABLE as err:
            raise DataError(f"{path}: arrays 'x' and 'y' are not readable ({err})") from None
    return arrays


def _npy_header(
    path: pathlib.Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo
) -> tuple[tuple[int, ...], np.dtype]:
    """The member's .npy header ``(shape, dtype)``, once its declared size is
    found to be what the zip directory says the member holds."""
    fmt = np.lib.format
    with archive.open(info) as member:
        try:
            version = fmt.read_magic(member)
            read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f".npy format version {version}, expected 1.0 or 2.0")
            shape, _, dtype = read_header[version](member)  # _: fortran_order
        except _UNREADABLE as err:  # a checksum is checked as soon as a member is all read
            raise DataError(f"{path}: arrays 'x' and 'y' are not readable ({err})") from None
        data_bytes = info.file_size - member.tell()
    if dtype.hasobject:
        raise DataError(
            f"{path}: arrays 'x' and 'y' are not readable ({info.filename} holds Python "
            f"objects, dtype {dtype}); save arrays of numbers"
        )
    n_bytes = math.prod(shape) * dtype.itemsize
    if n_bytes != data_bytes:
        raise DataError(
            f"{path}: {info.filename} declares {dtype} values of shape {shape} "
            f"({n_bytes} bytes) but holds {data_bytes} bytes after its header; the file "
            "is damaged or was not written by numpy"
        )
    return shape, dtype


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
    sample_weight: int | str | None = None,
    max_bytes: int,
) -> Dataset:
    # utf-8-sig drops the byte-order mark spreadsheets write, which would make the first
    # cell non-numeric and the first data row a "header".
    with (
        _limits.open_regular(path, max_bytes) as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as f,
    ):
        lines = _lines(path, csv.reader(f))
        first = next(lines, None)
        if first is None:
            raise DataError(f"{path}: no rows (the data are empty)")
        if header is None:
            header = not all(_is_number(cell) for cell in first[1])
        names, width = (first[1] if header else None), len(first[1])
        if width < 2:
            raise DataError(f"{path}: needs at least 2 columns (features and a target), found 1")
        target = _target_index(path, target_column, names, width)
        weight = None
        if sample_weight is not None:
            weight = _target_index(path, sample_weight, names, width, "sample_weight")
            if weight == target:
                raise DataError(f"{path}: sample_weight={sample_weight!r} is the target column")
            if width < 3:
                raise DataError(f"{path}: needs at least 3 columns (features, a target and "
                                "sample_weight), found 2")  # fmt: skip
        # Packed float64s, 8 bytes a cell, checked against the limit as they grow: a list of
        # Python floats would take 32.
        values = array.array("d")
        for line, cells in lines if header else itertools.chain([first], lines):
            if len(cells) != width:
                raise DataError(f"{path}: line {line} has {len(cells)} cells, expected {width}")
            try:
                values.extend([float(cell) for cell in cells])
            except ValueError:
                column, cell = next((j, c) for j, c in enumerate(cells) if not _is_number(c))
                raise DataError(
                    f"{path}: line {line}, column {column + 1}: {cell!r} is not a number"
                ) from None
            _limits.check_size(
                f"{path}: its values, read as float64, need", 8 * len(values), max_bytes
            )
    if not values:
        raise DataError(f"{path}: no data rows after the header (the data are empty)")
    table = np.frombuffer(values, np.float64).reshape(-1, width)
    x, y = (
        np.delete(table, [c for c in (target, weight) if c is not None], axis=1),
        table[:, target].copy(),
    )
    if classification is None:
        classification = n_classes is not None or looks_like_labels(y)
    weights = None if weight is None else table[:, weight].copy()
    return from_arrays(path.name, x, y, labels=classification, n_classes=n_classes,
                       sample_weight=weights)  # fmt: skip


def _lines(path: pathlib.Path, reader) -> Iterator[tuple[int, list[str]]]:
    """``(line number, stripped cells)`` of each line that is not blank."""
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                yield reader.line_num, [cell.strip() for cell in cells]
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err})") from None
    except csv.Error as err:
        raise DataError(f"{path}: line {reader.line_num}: {err}") from None


def _target_index(
    path: pathlib.Path,
    column: int | str,
    names: list[str] | None,
    width: int,
    option: str = "target_column",
) -> int:
    """The index of the column that ``option`` (an index or a header name) selects."""
    if isinstance(column, str):
        if names is None:
            raise DataError(f"{path}: {option}={column!r} names a column but there is no header")
        if column not in names:
            raise DataError(f"{path}: no column named {column!r}; columns: {', '.join(names)}")
        return names.index(column)
    if not isinstance(column, numbers.Integral) or isinstance(column, bool):
        raise DataError(f"{path}: {option} must be a column index or name, got {column!r}")
    if not -width <= column < width:
        raise DataError(f"{path}: {option} {column} is out of range for {width} columns")
    return int(column) % width


def read_idx_folder(
    folder: pathlib.Path,
    *,
    subset: str = "train",
    n_classes: int | None = None,
    max_bytes: int,
) -> Dataset:
    prefixes = {"train": "train", "test": "t10k"}
    if subset not in prefixes:
        raise DataError(f"{folder}: subset must be 'train' or 'test', got {subset!r}")
    images = idx.read(_idx_file(folder, prefixes[subset], "images", 3), max_bytes=max_bytes)
    labels = idx.read(_idx_file(folder, prefixes[subset], "labels", 1), max_bytes=max_bytes)
    x = images.reshape(images.shape[0], math.prod(images.shape[1:]))
    name = f"{folder.resolve().name}/{subset}"
    return from_arrays(name, x, labels, labels=True, n_classes=n_classes)


def _idx_file(folder: pathlib.Path, prefix: str, kind: str, ndim: int) -> pathlib.Path:
    stems = (f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte")
    for stem, suffix in itertools.product(stems, ("", ".gz")):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    raise DataError(f"{folder}: no MNIST-format {kind} file {stems[0]}[.gz]")
