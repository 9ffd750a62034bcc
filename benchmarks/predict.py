"""Predictions on 10^6 rows of digits' width: funcbp, onnxruntime and scikit-learn.

One network (64-128-128-10 ReLU, trained 3 epochs on digits by ``funcbp train``) on
the same 10^6 x 64 float32 rows, in one process: ``Predictor.predict_proba`` (the
standardisation and the network, compiled), onnxruntime on ``funcbp export``'s graph
(standardisation inside), and scikit-learn's ``MLPClassifier.predict_proba`` holding
the same weights (inputs standardised beforehand, as it has no such step). Each is
run once to warm up, then timed ``--rounds`` times interleaved; the table gives the
median rows per second and the ratio to funcbp's. The whole ``funcbp predict``
command (reading the .npz, writing the CSV of 10^6 x 11 columns) is timed once
apart. Needs the onnx extra and scikit-learn.

    python benchmarks/predict.py [--rounds 5] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

import funcbp

RUN_FILE = """[data]
source = "digits"
[model]
hidden = [128, 128]
cost = "softmax_cross_entropy"
[train]
epochs = 3
"""


def _sklearn_twin(predictor: funcbp.Predictor) -> MLPClassifier:
    """A fitted MLPClassifier of the same sizes, its weights replaced by the run's."""
    sizes = predictor.net.sizes
    twin = MLPClassifier(hidden_layer_sizes=sizes[1:-1], max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        twin.fit(np.zeros((sizes[-1], sizes[0])), np.arange(sizes[-1]))
    twin.coefs_ = [np.asarray(p["w"], np.float64) for p in predictor.params]
    twin.intercepts_ = [np.asarray(p["b"], np.float64) for p in predictor.params]
    return twin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    (work / "digits.toml").write_text(RUN_FILE)
    funcbp_cli = [sys.executable, "-m", "funcbp"]
    subprocess.run([*funcbp_cli, "train", str(work / "digits.toml"), "--out", str(work / "run")],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*funcbp_cli, "export", str(work / "run"), "--onnx", str(work / "m.onnx"),
                    "--probabilities"], check=True, capture_output=True)  # fmt: skip
    predictor = funcbp.load_run(work / "run")
    digits = funcbp.data.load("digits").x
    x = digits[np.random.default_rng(0).integers(0, len(digits), args.rows)]
    session = ort.InferenceSession(str(work / "m.onnx"))
    name = session.get_inputs()[0].name
    twin = _sklearn_twin(predictor)
    stats = predictor.standardizer
    contenders = {
        "funcbp Predictor": lambda: predictor.predict_proba(x),
        "onnxruntime": lambda: session.run(None, {name: x})[0],
        "scikit-learn": lambda: twin.predict_proba((x - stats.mean) / stats.std),
    }
    outputs = {label: run() for label, run in contenders.items()}  # warm-up, compile
    for label, out in outputs.items():
        np.testing.assert_allclose(out, outputs["funcbp Predictor"], atol=1e-5, err_msg=label)
    seconds = {label: [] for label in contenders}
    for _ in range(args.rounds):
        for label, run in contenders.items():
            start = time.perf_counter()
            run()
            seconds[label].append(time.perf_counter() - start)
    np.savez(work / "rows.npz", x=x)
    start = time.perf_counter()
    subprocess.run([*funcbp_cli, "predict", str(work / "run"), str(work / "rows.npz"), "--out",
                    str(work / "p.csv")], check=True, capture_output=True)  # fmt: skip
    command = time.perf_counter() - start
    base = statistics.median(seconds["funcbp Predictor"])
    print(
        f"{args.rows} rows x 64, network {list(predictor.net.sizes)}, medians of "
        f"{args.rounds} interleaved rounds (outputs agree to 1e-5)\n"
    )
    print(f"{'':<20} {'median s':>9} {'rows/s':>12} {'vs funcbp':>10}")
    for label, values in seconds.items():
        median = statistics.median(values)
        print(f"{label:<20} {median:9.3f} {args.rows / median:12.3g} {median / base:9.2f}x")
    print(
        f"\nfuncbp predict, the whole command (.npz in, CSV of {args.rows} x 11 out): "
        f"{command:.2f} s"
    )


if __name__ == "__main__":
    main()
