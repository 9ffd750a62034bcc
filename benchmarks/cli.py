"""Whole-process wall time: ``funcbp train configs/digits.toml`` against scikit-learn.

Each round starts, in fresh processes and in alternating order:
  funcbp warm   the command with JAX's persistent compilation cache filled
  funcbp cold   the same with an empty cache directory (first run on a machine)
  scikit-learn  a script that imports scikit-learn, loads digits, splits off 20 %,
                standardises and fits ``MLPClassifier`` with the same settings
                (128-128 ReLU, adam 1e-3, batch 64, 30 epochs, test 0.2)
and prints the median wall time of each, their ratios and test accuracies.

    python benchmarks/cli.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCBP = str(Path(sys.executable).with_name("funcbp"))

# What a scikit-learn user writes: its own loader, split and scaler (no JAX imported).
SKLEARN = """
import warnings
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
warnings.simplefilter("ignore", ConvergenceWarning)
x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
scaler = StandardScaler().fit(x_train)
net = MLPClassifier((128, 128), activation="relu", solver="adam", learning_rate_init=1e-3,
                    batch_size=64, max_iter=30, alpha=0.0, random_state=0)
net.fit(scaler.transform(x_train), y_train)
print(net.score(scaler.transform(x_test), y_test))
"""


def _funcbp(cache: Path, out: Path) -> float:
    cmd = [FUNCBP, "train", str(ROOT / "configs" / "digits.toml"), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, env={"FUNCBP_CACHE_DIR": str(cache)})
    return json.loads((out / "summary.json").read_text())["test_accuracy"]


def _sklearn() -> float:
    done = subprocess.run([sys.executable, "-c", SKLEARN], check=True, capture_output=True)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    work = Path(tempfile.mkdtemp(prefix="funcbp-bench-cli-"))
    warm = work / "warm-cache"
    _funcbp(warm, work / "fill")  # fills the warm cache
    cases = {
        "funcbp warm": lambda i: _funcbp(warm, work / f"warm-{i}"),
        "funcbp cold": lambda i: _funcbp(work / f"cold-cache-{i}", work / f"cold-{i}"),
        "scikit-learn": lambda i: _sklearn(),
    }
    seconds = {name: [] for name in cases}
    accuracy = {}
    for i in range(rounds):
        order = list(cases) if i % 2 == 0 else list(reversed(cases))
        for name in order:
            start = time.perf_counter()
            accuracy[name] = cases[name](i)
            seconds[name].append(time.perf_counter() - start)
        print(f"  round {i + 1}/{rounds} done", file=sys.stderr)
    shutil.rmtree(work)
    base = statistics.median(seconds["scikit-learn"])
    print(f"{'process':<14} {'median s':>9} {'min s':>7} {'vs sklearn':>11} {'test acc':>9}")
    for name, times in seconds.items():
        median = statistics.median(times)
        print(
            f"{name:<14} {median:9.2f} {min(times):7.2f} {median / base:10.2f}x "
            f"{accuracy[name]:9.4f}"
        )


if __name__ == "__main__":
    main()
