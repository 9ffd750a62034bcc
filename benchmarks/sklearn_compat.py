"""funcbp.sklearn against scikit-learn's own MLPClassifier, on the same data in one run.

Three measurements, each with both estimators and the same settings:

  digits       fresh processes, the default MLPClassifier() ((100,) ReLU, adam, batch
               200, up to 200 epochs) on a standardised 80/20 split, fitted for seeds
               0-9 (random_state): the first fit's wall time (funcbp with an empty and
               with a filled compilation cache), the median of the other nine, and the
               test accuracy's mean and standard error over the seeds
  50,000 x 100 make_classification (20 informative features, 4 classes), 20 epochs
               (n_iter_no_change=20: neither stops early) after a fit that compiles;
               the fit's seconds and test accuracy
  grid search  GridSearchCV(Pipeline(StandardScaler, MLPClassifier), 5-fold, alpha x
               learning_rate_init: 4 settings, 20 fits and the refit) on all of
               digits, in one process from cold: total seconds, and compile seconds

    python benchmarks/sklearn_compat.py [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLP
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

SEEDS = range(10)
GRID = {"mlpclassifier__alpha": [1e-4, 1e-2], "mlpclassifier__learning_rate_init": [1e-3, 3e-3]}


def _estimator(which: str):
    """The MLPClassifier class of ``which`` (``"funcbp"`` or ``"scikit-learn"``)."""
    if which == "scikit-learn":
        return SklearnMLP
    from funcbp.sklearn import MLPClassifier

    return MLPClassifier


def _digits_split():
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test), y_train, y_test


def _digits_one(which: str, cache: str | None) -> dict:
    """One fresh process's digits fits, seeds 0-9."""
    if cache is not None:
        import funcbp

        funcbp.enable_compilation_cache(cache)
    estimator = _estimator(which)
    x_train, x_test, y_train, y_test = _digits_split()
    seconds, accuracy = [], []
    for seed in SEEDS:
        start = time.perf_counter()
        net = estimator(random_state=seed).fit(x_train, y_train)
        seconds.append(time.perf_counter() - start)
        accuracy.append(net.score(x_test, y_test))
    return {"seconds": seconds, "accuracy": accuracy}


def _fresh(which: str, cache: str | None) -> dict:
    command = [sys.executable, __file__, "--one", which, *(["--cache", cache] if cache else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def digits(rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="funcbp-bench-sklearn-"))
    warm = str(work / "warm")
    _fresh("funcbp", warm)  # fills the warm cache
    cases = {"funcbp cold": lambda r: ("funcbp", str(work / f"cold-{r}")),
             "funcbp warm": lambda r: ("funcbp", warm),
             "scikit-learn": lambda r: ("scikit-learn", None)}  # fmt: skip
    runs = {name: [] for name in cases}
    for r in range(rounds):
        for name in cases if r % 2 == 0 else reversed(cases):
            print(f"  digits round {r + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
            runs[name].append(_fresh(*cases[name](r)))
    first = {name: statistics.median(run["seconds"][0] for run in done)
             for name, done in runs.items()}  # fmt: skip
    later = {name: statistics.median(s for run in done for s in run["seconds"][1:])
             for name, done in runs.items()}  # fmt: skip
    print(f"\ndigits: MLPClassifier() defaults on 1437 standardised rows, test on 360, "
          f"seeds 0-{len(SEEDS) - 1}, {rounds} fresh process(es) each")  # fmt: skip
    print(f"{'':<14}{'first fit s':>12}{'vs sk':>8}{'later fits s':>14}{'vs sk':>8}"
          f"{'test acc':>10}{'± se':>8}")  # fmt: skip
    for name, done in runs.items():
        accuracy = np.array(done[0]["accuracy"])
        se = accuracy.std(ddof=1) / np.sqrt(len(accuracy))
        print(f"{name:<14}{first[name]:12.2f}{first[name] / first['scikit-learn']:7.2f}x"
              f"{later[name]:14.3f}{later[name] / later['scikit-learn']:7.2f}x"
              f"{accuracy.mean():10.4f}{se:8.4f}")  # fmt: skip


def large() -> None:
    x, y = make_classification(50_000, 100, n_informative=20, n_classes=4, random_state=0)
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    settings = dict(max_iter=20, n_iter_no_change=20, random_state=0)
    rows = {}
    for which in ("funcbp", "scikit-learn"):
        print(f"  50,000 x 100: {which}", file=sys.stderr, flush=True)
        times = []
        for _ in range(2 if which == "funcbp" else 1):  # funcbp's first fit compiles
            start = time.perf_counter()
            net = _estimator(which)(**settings).fit(x_train, y_train)
            times.append(time.perf_counter() - start)
        rows[which] = (times, net.score(x_test, y_test))
    base = rows["scikit-learn"][0][-1]
    print("\nmake_classification 50,000 x 100 (4 classes), 40,000 train rows, 20 epochs, "
          "MLPClassifier() otherwise")  # fmt: skip
    print(f"{'':<14}{'first fit s':>12}{'fit s':>8}{'vs sk':>8}{'s/epoch':>9}{'test acc':>10}")
    for which, (times, accuracy) in rows.items():
        print(f"{which:<14}{times[0]:12.2f}{times[-1]:8.2f}{times[-1] / base:7.2f}x"
              f"{times[-1] / 20:9.3f}{accuracy:10.4f}")  # fmt: skip


def grid_search() -> None:
    x, y = load_digits(return_X_y=True)
    rows = {}
    for which in ("funcbp", "scikit-learn"):
        print(f"  grid search: {which}", file=sys.stderr, flush=True)
        clock = None
        if which == "funcbp":
            from funcbp._jax.compile_clock import CompileClock

            clock = CompileClock()
        search = GridSearchCV(make_pipeline(StandardScaler(), _estimator(which)(random_state=0)),
                              GRID, cv=5)  # fmt: skip
        start = time.perf_counter()
        search.fit(x, y)
        seconds = time.perf_counter() - start
        best = {k.split("__")[1]: v for k, v in search.best_params_.items()}
        rows[which] = (seconds, clock.seconds if clock else None, search.best_score_, best)
    base = rows["scikit-learn"][0]
    print("\nGridSearchCV on digits (1797 rows), 5-fold, alpha x learning_rate_init (4 "
          "settings): 20 fits and the refit, from cold")  # fmt: skip
    print(f"{'':<14}{'total s':>9}{'compile s':>11}{'vs sk':>8}{'best score':>12}  best")
    for which, (seconds, compile_s, score, best) in rows.items():
        compiled = "-" if compile_s is None else f"{compile_s:.2f}"
        print(f"{which:<14}{seconds:9.2f}{compiled:>11}{seconds / base:7.2f}x{score:12.4f}  {best}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="fresh processes per digits case")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.one:
        print(json.dumps(_digits_one(args.one, args.cache)))
        return
    digits(args.rounds)
    large()
    grid_search()


if __name__ == "__main__":
    main()
