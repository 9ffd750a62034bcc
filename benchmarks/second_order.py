"""Full-batch training to a goal: Levenberg-Marquardt, Newton-CG, L-BFGS, Adam, Rprop, sklearn.

Two benchmarks, each timed side by side in one process:

* **sine** (MATLAB's ``trainlm`` benchmark): a 1-5-1 network (tanh hidden, identity
  output, ``mse``) on 41 points ``x = linspace(-1, 1, 41)``, ``y = sin(pi x)``, goal:
  training MSE <= 0.002, ``--seeds`` initial parameters (``jax.random.key(seed)``);
* **digits**: 64-32-10 (tanh hidden, softmax cross-entropy) on all 1797 rows of
  digits, standardised as funcbp does (``funcbp.data.Standardizer``), full batch,
  goal: training loss (mean cross-entropy) <= 0.05, ``--digits-seeds`` seeds.

Methods: funcbp's ``levenberg_marquardt`` (on digits through the Gauss-Newton form
of the softmax cross-entropy; with 2410 parameters its ``solve="auto"`` takes the
matrix-free CG solve), ``newton_cg`` (Gauss-Newton curvature, its default, and the
exact Hessian as a second row), ``lbfgs``, all with their default options, Adam and
Rprop full batch (``batch_size=None``), and scikit-learn's ``MLPRegressor`` /
``MLPClassifier`` (``solver="lbfgs"``, same hidden layer and activation, ``alpha=0``
so that it minimises the same loss: its default L2 penalty would not be in
funcbp's, ``tol=0``). funcbp trains in float32 (its default); scikit-learn in
float64, its default for float64 input (on digits also a float32-input row). The
initial parameters differ: scikit-learn draws its own (Glorot-uniform weights and
biases from ``random_state=seed``), funcbp its own from the key.

Adam's and Rprop's rates are fixed, chosen once from a small sweep on seeds 100-107
(sine) and 100-102 (digits), none of them a benchmark seed, by the median iterations
to the goal: Adam {0.003, 0.01, 0.03, 0.1, 0.3, 1.0} on sine gave 0.3 (1.0 missed the
goal on one seed), {0.003, 0.01, 0.03, 0.1, 0.3} on digits gave 0.1; a row of Adam at
0.01, untuned, is there for comparison. Rprop's initial step {0.003, 0.01, 0.07
(MATLAB's ``trainrp`` default), 0.1} on sine gave 0.01, {0.01, 0.07, 0.2, 0.5} on
digits gave 0.07. The solvers are not tuned.

**Time to the goal.** For funcbp, each method's compiled block is built by a warm-up
``fit`` (its compile time, from ``jax.monitoring``, printed apart). Then, per seed, a
*probe* ``fit`` of up to the method's iteration cap records the loss before every
iteration (``history["train_loss"]``; the last iteration's result is evaluated after
it): the goal's iteration count ``k`` is the least number of iterations after which
the loss is at most the goal. The time to the goal is the wall time of a whole new
``fit`` call of exactly ``k`` iterations from the same key (``epochs=k``, the same
``epochs_per_call``: the same compiled block, so nothing compiles; the compile time
the timed runs saw is printed). Training is deterministic, so that run is the
probe's first ``k`` iterations; its final loss is checked against the goal. A seed
whose probe stops (a solver's stop rule) or reaches the cap above the goal is a
miss. Function and gradient evaluations are the solver's counts over those ``k``
iterations (a first-order iteration is one of each).

The time includes ``fit``'s fixed host cost (checks, placing the data, the initial
parameters, the history), which on the sine's 41 rows is most of it; so each seed's
one-iteration ``fit`` is timed too, interleaved with the rest, and the table also
gives the time to the goal beyond it: the median over seeds of (time of ``k``
iterations - time of one), the cost of the other ``k - 1`` iterations themselves
(scikit-learn's likewise, against ``max_iter=1``).

For scikit-learn (whose ``loss_curve_`` is not recorded by ``lbfgs``): a fit with
``max_iter`` at its cap tells whether the seed reaches the goal (``loss_`` is half
the MSE for the regressor, so the goal is ``loss_ <= 0.001``; the classifier's is
the mean cross-entropy, goal 0.05); then bisection on ``max_iter`` finds the least
number of iterations whose ``loss_`` meets the goal (L-BFGS-B's iterates do not
depend on ``max_iter`` and each lowers the loss, so the least one is well defined),
and the time to the goal is the wall time of a plain ``fit`` with that ``max_iter``.
Its function evaluations are counted by a subclass wrapping ``_loss_grad_lbfgs``
(one gradient each), in a separate, untimed fit.

All timed fits are interleaved: ``--rounds`` rounds, each over every seed and
method in turn; a seed's time is its median over the rounds, and the table gives the
median over the seeds that reached the goal (each method's own), and its ratio to
LM's median (on digits also funcbp L-BFGS over scikit-learn's). Iterations and
evaluations are medians over the same seeds.

    python benchmarks/second_order.py [--seeds 30] [--digits-seeds 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor

import funcbp
from funcbp import data
from funcbp._jax.compile_clock import CompileClock

SINE_GOAL = 0.002  # training MSE, trainlm's benchmark
DIGITS_GOAL = 0.05  # training mean cross-entropy
SKLEARN_CAP = {"sine": 2000, "digits": 1000}


class Method(NamedTuple):
    label: str
    make: Callable[[], Any]  # the optimizer
    cap: int  # iterations at most


def _methods(benchmark: str) -> list[Method]:
    make = funcbp.optim.make
    solver_cap, first_cap = (1000, 20000) if benchmark == "sine" else (500, 2000)
    adam, rprop = (0.3, 0.01) if benchmark == "sine" else (0.1, 0.07)
    return [
        Method("LM", lambda: make("levenberg_marquardt"), solver_cap),
        Method("Newton-CG (Gauss-Newton)", lambda: make("newton_cg"), solver_cap),
        Method("Newton-CG (Hessian)", lambda: make("newton_cg", curvature="hessian"), solver_cap),
        Method("L-BFGS", lambda: make("lbfgs"), solver_cap),
        Method(f"Adam ({adam})", lambda: make("adam", adam), first_cap),
        Method("Adam (0.01, untuned)", lambda: make("adam", 0.01), first_cap),
        Method(f"Rprop ({rprop})", lambda: make("rprop", rprop), first_cap),
    ]


class Probe(NamedTuple):
    """One seed's untimed run: how many iterations to the goal, at what cost."""

    iterations: int | None  # None: the goal was not reached
    function_evaluations: int | None
    gradient_evaluations: int | None
    cg_per_iteration: float | None  # mean CG iterations per iteration, to the goal
    ran: int  # iterations the probe ran
    stop: str  # its stop reason, "cap" when it ran to the cap
    warned: str | None  # a SolverWarning's message


class Runner:
    """A funcbp method on one data set: warm-up, probes and timed fits."""

    def __init__(self, net: funcbp.MLP, method: Method, x, y, goal: float):
        self.net, self.method, self.x, self.y, self.goal = net, method, x, y, goal
        self.optimizer = method.make()  # one object: fit reuses its compiled block
        self.loss = jax.jit(lambda params: net.loss(params, x, y))
        clock = CompileClock()
        start = time.perf_counter()
        self.fit(0, method.cap)
        self.first_call = time.perf_counter() - start
        self.compile = clock.seconds

    def fit(self, seed: int, epochs: int):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", funcbp.train.SolverWarning)
            state, history = funcbp.fit(self.net, self.optimizer, (self.x, self.y),
                                        batch_size=None, epochs=epochs,
                                        epochs_per_call=self.method.cap,
                                        key=jax.random.key(seed))  # fmt: skip
            jax.block_until_ready(state.params)
        solver_warnings = [w for w in caught if issubclass(w.category, funcbp.train.SolverWarning)]
        return state, history, (str(solver_warnings[0].message) if solver_warnings else None)

    def probe(self, seed: int) -> Probe:
        state, history, warned = self.fit(seed, self.method.cap)
        ran = len(history["train_loss"])
        after = [*history["train_loss"][1:], float(self.loss(state.params))]  # after i + 1
        hits = [i + 1 for i, loss in enumerate(after) if loss <= self.goal]
        stop = history.get("stop_reason", "cap")
        if not hits:
            return Probe(None, None, None, None, ran, stop, warned)
        k = hits[0]
        fe = sum(history.get("function_evaluations", [1] * ran)[:k])
        ge = sum(history.get("gradient_evaluations", [1] * ran)[:k])
        cg = history.get("cg_iterations")
        return Probe(k, fe, ge, None if cg is None else sum(cg[:k]) / k, ran, stop, warned)

    def timed(self, seed: int, k: int) -> tuple[float, float]:
        """Seconds of a whole fit of ``k`` iterations, and the loss it ends at."""
        start = time.perf_counter()
        state, _, _ = self.fit(seed, k)
        seconds = time.perf_counter() - start
        return seconds, float(self.loss(state.params))


class _CountingRegressor(MLPRegressor):
    def _loss_grad_lbfgs(self, *args):
        self.evaluations_ += 1
        return MLPRegressor._loss_grad_lbfgs(self, *args)


class _CountingClassifier(MLPClassifier):
    def _loss_grad_lbfgs(self, *args):
        self.evaluations_ += 1
        return MLPClassifier._loss_grad_lbfgs(self, *args)


class SklearnRunner:
    """scikit-learn's lbfgs on one data set; ``goal`` in its own ``loss_``."""

    def __init__(self, benchmark: str, x, y, goal: float, label: str = "scikit-learn L-BFGS"):
        self.benchmark, self.x, self.y, self.goal = benchmark, x, y, goal
        self.cap = SKLEARN_CAP[benchmark]
        self.method = Method(label, lambda: None, self.cap)

    def _model(self, seed: int, max_iter: int, counting: bool = False):
        regressor = self.benchmark == "sine"
        cls = {(True, False): MLPRegressor, (True, True): _CountingRegressor,
               (False, False): MLPClassifier, (False, True): _CountingClassifier}[
                   (regressor, counting)]  # fmt: skip
        hidden = (5,) if regressor else (32,)
        return cls(hidden_layer_sizes=hidden, activation="tanh", solver="lbfgs", alpha=0.0,
                   tol=0.0, max_iter=max_iter, random_state=seed)  # fmt: skip

    def _fit(self, seed: int, max_iter: int, counting: bool = False):
        model = self._model(seed, max_iter, counting)
        model.evaluations_ = 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(self.x, self.y)
        return model

    def probe(self, seed: int) -> Probe:
        full = self._fit(seed, self.cap)
        stop = "cap" if full.n_iter_ >= self.cap else "scipy converged"
        if full.loss_ > self.goal:
            return Probe(None, None, None, None, full.n_iter_, stop, None)
        lo, hi = 0, full.n_iter_  # loss after lo iterations > goal, after hi <= goal
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self._fit(seed, mid).loss_ <= self.goal else (mid, hi)
        counted = self._fit(seed, hi, counting=True)
        return Probe(hi, counted.evaluations_, counted.evaluations_, None, full.n_iter_, stop, None)

    def timed(self, seed: int, k: int) -> tuple[float, float]:
        start = time.perf_counter()
        model = self._fit(seed, k)
        return time.perf_counter() - start, model.loss_


def _run(runners: list, seeds: range, rounds: int) -> tuple[dict, dict, dict, float]:
    """Probes every seed, then times the goal runs and one-iteration runs interleaved:
    ``({label: {seed: Probe}}, {label: {seed: median seconds to the goal}}, the same of
    one-iteration fits, compile seconds seen by the timed runs)``."""
    probes = {r.method.label: {s: r.probe(s) for s in seeds} for r in runners}
    seconds: dict[str, dict[int, list[float]]] = {r.method.label: {} for r in runners}
    once: dict[str, dict[int, list[float]]] = {r.method.label: {} for r in runners}
    clock = CompileClock()
    for round_ in range(rounds):
        for seed in seeds:
            for runner in runners:
                label = runner.method.label
                k = probes[label][seed].iterations
                if k is None:
                    continue
                took, loss = runner.timed(seed, k)
                if round_ == 0 and not loss <= runner.goal:
                    print(f"  note: {label} seed {seed}: the timed run of {k} iterations ended "
                          f"at {loss:.3g}, above the goal", file=sys.stderr)  # fmt: skip
                seconds[label].setdefault(seed, []).append(took)
                once[label].setdefault(seed, []).append(runner.timed(seed, 1)[0])

    def medians(runs):
        return {label: {s: statistics.median(v) for s, v in per_seed.items()}
                for label, per_seed in runs.items()}  # fmt: skip

    return probes, medians(seconds), medians(once), clock.seconds


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(runners: list, probes: dict, medians: dict, once: dict, seeds: range) -> None:
    times = {label: _median(per_seed.values()) for label, per_seed in medians.items()}
    firsts = {label: _median(per_seed.values()) for label, per_seed in once.items()}
    beyond = {label: _median(t - once[label][s] for s, t in per_seed.items())
              for label, per_seed in medians.items()}  # fmt: skip

    def ratio(values, label):
        value, base = values[label], values["LM"]
        return "-" if value is None or not base else f"{value / base:.2f}x"

    print("| method | reached goal | time to goal (ms) | vs LM | 1-iteration fit (ms) | "
          "to goal beyond it (ms) | vs LM | iterations | f-evals | g-evals | "
          "CG its / iteration |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for runner in runners:
        label = runner.method.label
        found = [p for p in probes[label].values() if p.iterations is not None]
        ms = {name: None if v[label] is None else v[label] * 1e3
              for name, v in (("t", times), ("first", firsts), ("beyond", beyond))}  # fmt: skip
        print(f"| {label} | {len(found)}/{len(seeds)} | {_fmt(ms['t'], '.2f')} | "
              f"{ratio(times, label)} | {_fmt(ms['first'], '.2f')} | "
              f"{_fmt(ms['beyond'], '.2f')} | {ratio(beyond, label)} | "
              f"{_fmt(_median(p.iterations for p in found), 'g')} | "
              f"{_fmt(_median(p.function_evaluations for p in found), 'g')} | "
              f"{_fmt(_median(p.gradient_evaluations for p in found), 'g')} | "
              f"{_fmt(_median(p.cg_per_iteration for p in found), '.1f')} |")  # fmt: skip


def _notes(runners: list, probes: dict) -> None:
    """Per method: how the probe runs stopped, misses and solver warnings."""
    for runner in runners:
        label = runner.method.label
        runs = probes[label]
        stops = collections.Counter(p.stop for p in runs.values())
        misses = [f"seed {s} ({p.stop} after {p.ran})" for s, p in runs.items()
                  if p.iterations is None]  # fmt: skip
        warned = collections.Counter(p.warned.split(": ")[0] for p in runs.values() if p.warned)
        line = f"  {label}: probe runs stopped by " + ", ".join(
            f"{name} x{n}" for name, n in stops.most_common()
        )
        if misses:
            line += "; missed the goal: " + ", ".join(misses)
        if warned:
            line += "; SolverWarning: " + ", ".join(f"{w} x{n}" for w, n in warned.items())
        print(line)


def _compile_lines(runners: list) -> None:
    print("\ncompile (warm-up fit, once per method; not in the times above):")
    for runner in runners:
        if isinstance(runner, Runner):
            print(f"  {runner.method.label}: {runner.compile:.2f} s compiling, first fit call "
                  f"{runner.first_call:.2f} s")  # fmt: skip


def sine(seeds: int, rounds: int) -> None:
    x = np.linspace(-1.0, 1.0, 41)[:, None]
    y = np.sin(np.pi * x)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    net = funcbp.MLP(sizes=(1, 5, 1), activation="tanh", output_activation="identity",
                     cost="mse")  # fmt: skip
    runners: list = [Runner(net, m, x32, y32, SINE_GOAL) for m in _methods("sine")]
    runners.append(SklearnRunner("sine", x, y.ravel(), SINE_GOAL / 2))
    span = range(seeds)
    probes, medians, once, compiled = _run(runners, span, rounds)
    print(f"## sine: 1-5-1 tanh, 41 points of sin(pi x), goal MSE <= {SINE_GOAL}, "
          f"{seeds} seeds\n")  # fmt: skip
    _table(runners, probes, medians, once, span)
    print("\nnotes:")
    _notes(runners, probes)
    _compile_lines(runners)
    print(f"compile time seen during the timed runs: {compiled:.3f} s")


def digits(seeds: int, rounds: int) -> None:
    dataset = data.load("digits")
    dataset = data.Standardizer.fit(dataset).apply(dataset)
    x, y = dataset.x, dataset.y
    net = funcbp.MLP(sizes=(64, 32, 10), activation="tanh", cost="softmax_cross_entropy")
    runners: list = [Runner(net, m, x, y, DIGITS_GOAL) for m in _methods("digits")]
    runners.append(SklearnRunner("digits", x.astype(np.float64), y, DIGITS_GOAL))
    runners.append(SklearnRunner("digits", x, y, DIGITS_GOAL, "scikit-learn L-BFGS (float32)"))
    span = range(seeds)
    probes, medians, once, compiled = _run(runners, span, rounds)
    print(f"\n## digits: 64-32-10 tanh, softmax cross-entropy, 1797 rows full batch, goal "
          f"loss <= {DIGITS_GOAL}, {seeds} seeds\n")  # fmt: skip
    _table(runners, probes, medians, once, span)
    print("\nnotes:")
    _notes(runners, probes)
    _compile_lines(runners)
    print(f"compile time seen during the timed runs: {compiled:.3f} s")
    ours = _median(medians["L-BFGS"].values())
    lbfgs = next(r for r in runners if r.method.label == "L-BFGS")
    for label in ("scikit-learn L-BFGS", "scikit-learn L-BFGS (float32)"):
        theirs = _median(medians[label].values())
        if ours is not None and theirs is not None:
            print(f"funcbp L-BFGS / {label}, median time to the goal after compile: "
                  f"{ours / theirs:.2f} ({ours * 1e3:.2f} ms / {theirs * 1e3:.2f} ms; funcbp's "
                  f"compile {lbfgs.compile:.2f} s apart)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30, help="sine seeds")
    parser.add_argument("--digits-seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, interleaved")
    args = parser.parse_args()
    warnings.simplefilter("ignore", funcbp.diagnostics.DiagnosticWarning)
    start = time.perf_counter()
    print(f"funcbp float32 (scikit-learn float64 unless marked); jax {jax.__version__} on "
          f"{jax.devices()[0].device_kind}, scikit-learn {sklearn.__version__}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}; times: medians over "
          f"seeds of each seed's median over {args.rounds} interleaved rounds\n")  # fmt: skip
    sine(args.seeds, args.rounds)
    digits(args.digits_seeds, args.rounds)
    print(f"\n(whole run {time.perf_counter() - start:.0f} s)\n"
          f"reproduce: python benchmarks/second_order.py --seeds {args.seeds} --digits-seeds "
          f"{args.digits_seeds} --rounds {args.rounds}")  # fmt: skip


if __name__ == "__main__":
    main()
