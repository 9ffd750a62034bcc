"""``funcbp predict RUN_DIR DATA``, ``funcbp evaluate RUN_DIR DATA`` and ``funcbp export
RUN_DIR --onnx FILE``: a trained run on new data, standardised as its training split was
(``funcbp.load_run``), or as an ONNX graph that standardises its inputs itself.

DATA is what ``funcbp.data.load`` reads (``.npz`` with ``x`` and ``y``, ``.csv`` with
the target in the last column, a folder of IDX files), or an ``.npz`` holding only
``x`` for ``predict``. Predictions go to ``--out`` (``.csv`` or ``.npz``, written
whole) or as CSV to standard output: for classification a ``class`` column and one
probability per class (``p_0``, ``p_1``, ...; several sigmoid outputs: ``label_i`` and
``p_i`` each), for regression ``y_0``, ``y_1``, ...
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

from funcbp import data
from funcbp._jax import atomic
from funcbp.activations import Activation
from funcbp.cli import _pieces
from funcbp.cli import config as _config
from funcbp.cli import run as _run
from funcbp.errors import DataError
from funcbp.export import export_onnx
from funcbp.losses import Cost
from funcbp.predict import Predictor, load_run


def add_parsers(sub) -> None:
    """The ``predict``, ``evaluate`` and ``export`` commands' arguments."""
    predict = sub.add_parser("predict", help="predict with a trained run on new data")
    evaluate = sub.add_parser("evaluate", help="a trained run's loss and accuracy on labelled data")
    export = sub.add_parser("export", help="a trained run as an ONNX graph (the onnx extra)")
    for parser in (predict, evaluate, export):
        parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory")
        if parser is not export:
            parser.add_argument("data", type=Path, metavar="DATA", help=".npz, .csv or IDX")
        parser.add_argument(
            "--which",
            choices=("best", "latest"),
            help="checkpoint (default: the parameters the run's summary reports)",
        )
    predict.add_argument("--out", type=Path, help=".csv or .npz (default: CSV on stdout)")
    export.add_argument("--onnx", type=Path, required=True, metavar="FILE", dest="out")
    export.add_argument("--probabilities", action="store_true",
                        help="end in the softmax or sigmoid (default: the logits)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Runs ``predict`` or ``evaluate``; bad input raises (``funcbp.cli.main`` reports it)."""
    if args.command == "predict" and args.out and args.out.suffix not in (".csv", ".npz"):
        raise DataError(f"--out {args.out}: expected a .csv or .npz file name")
    predictor = load_run(args.run_dir, args.which, _run_pieces(args.run_dir))
    if args.command == "export":
        output = "probabilities" if args.probabilities else "logits"
        try:
            export_onnx(predictor.net, predictor.params, args.out,
                        standardizer=predictor.standardizer, output=output)  # fmt: skip
        except (ValueError, ImportError) as err:
            raise DataError(f"export: {err}") from None
        print(f"{args.out}: {output} of {list(predictor.net.sizes)} for inputs [B, "
              f"{predictor.net.sizes[0]}]")  # fmt: skip
        return 0
    x, y = read(args.data)
    if args.command == "evaluate":
        if y is None:
            raise DataError(f"{args.data} has no labels ('y'); evaluate needs them")
        metrics = predictor.evaluate(x, y, str(args.data))
        shown = "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        print(f"{args.data}: {len(x)} rows  {shown}")
        return 0
    columns = predictions(predictor, x)
    if args.out is None:
        sys.stdout.write(_csv(columns))
    elif args.out.suffix == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, **columns)
        atomic.write(args.out, buffer.getvalue())
    else:
        atomic.write(args.out, _csv(columns).encode())
    return 0


def _run_pieces(run_dir: Path) -> list:
    """The user pieces the run's config names (imported), with 64-bit mode on for a
    float64 run; none for a directory without a config (``load_run`` says what it lacks)."""
    if not (run_dir / "config.toml").is_file():
        return []
    saved = _config.load(run_dir / "config.toml")
    _run.param_dtype(saved.train.dtype)
    options = _pieces.resolve_options(saved.model.options, lambda key: f"model.{key}")
    values = [v for value in options.values() for v in
              (value if isinstance(value, tuple | list) else (value,))]  # fmt: skip
    return [v for v in values if isinstance(v, Activation | Cost)]


def read(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x [n, n_features], y or None)`` from DATA (``DataError`` naming what is wrong)."""
    if path.suffix == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as arrays:
                if "y" not in arrays.files and "x" in arrays.files:
                    x = arrays["x"]
                    return x.reshape(len(x), -1), None
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise DataError(f"{path}: not a readable .npz ({err})") from None
    dataset = data.load(path)
    return dataset.x, dataset.y


def predictions(predictor: Predictor, x: np.ndarray) -> dict[str, np.ndarray]:
    """The output columns for inputs ``x``, each ``[n]``, in order."""
    if predictor.classes is None:
        values = predictor.predict(x)
        return {f"y_{i}": values[:, i] for i in range(values.shape[1])}
    labels, proba = predictor.predict(x), predictor.predict_proba(x)
    if labels.ndim == 2:  # several sigmoid outputs: one label each
        return {**{f"label_{i}": labels[:, i] for i in range(labels.shape[1])},
                **{f"p_{i}": proba[:, i] for i in range(proba.shape[1])}}  # fmt: skip
    return {"class": labels, **{f"p_{i}": proba[:, i] for i in range(proba.shape[1])}}


def _csv(columns: dict[str, np.ndarray]) -> str:
    out = io.StringIO()
    formats = ["%d" if np.issubdtype(c.dtype, np.integer) else "%.9g" for c in columns.values()]
    np.savetxt(out, np.column_stack(list(columns.values())), fmt=formats, delimiter=",",
               header=",".join(columns), comments="")  # fmt: skip
    return out.getvalue()
