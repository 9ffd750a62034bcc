"""Learning rules against backprop on digits: accuracy over seeds, step time, alignment.

For each network and rule, ``--seeds`` runs from the same initial weights per seed
(a rule's own matrices come from a key split off the parameters') train on digits'
training split (80 %, standardised) for ``--epochs`` epochs of batch 32 and report
the median test accuracy (and its range), the last epoch's per-layer angle of the
rule's update to the exact gradient and of ``B_l`` to ``W_l^T`` (medians over the
seeds; one statistics step per epoch), and the step time relative to backprop's:
each rule's compiled epoch (no statistics) timed interleaved with the others in
``--rounds`` rounds, median per step.

Adam (1e-3) trains every rule but the forward gradient, whose estimates are too
noisy for Adam's per-coordinate scaling: plain SGD trains it, with a step inversely
proportional to the number of parameters (the estimate's variance grows with it):
80 / n_params, 3.1e-3 for the digits network, 3.7e-4 for the deep one (3e-3 and
1e-3 made the deep one diverge).

    python benchmarks/rules.py [--seeds 5] [--epochs 20] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import jax
import numpy as np

import funcbp
from funcbp import data, rules

NETWORKS = {
    "digits 64-128-128-10 tanh": (64, 128, 128, 10),
    "deep 64-256x4-10 tanh": (64, 256, 256, 256, 256, 10),
}
BATCH = 32


def _optimizer(rule: str, net: funcbp.MLP):
    if rule == "forward_gradient":
        return funcbp.optim.make("sgd", 80 / net.num_params)
    return funcbp.optim.make("adam", 1e-3)


def _train(net, rule: str, parts, seed: int, epochs: int) -> dict:
    steps_per_epoch = len(parts.train) // BATCH
    _, history = funcbp.fit(net, _optimizer(rule, net), parts.train, epochs=epochs,
                            batch_size=BATCH, engine=rule, eval={"test": parts.test},
                            key=jax.random.key(seed),
                            diagnostics_every=steps_per_epoch)  # fmt: skip
    return history


def _step_times(net, names, parts, rounds: int) -> dict[str, float]:
    """Seconds per step of each rule's compiled epoch, timed interleaved, median."""
    x, y = jax.device_put(parts.train.x), jax.device_put(parts.train.y)
    epochs, states = {}, {}
    for name in names:
        epochs[name] = jax.jit(funcbp.make_epoch(net, _optimizer(name, net), batch_size=BATCH,
                                                 engine=name))  # fmt: skip
        rule = funcbp.train.rule_of(funcbp.train.FitOptions(1, BATCH, engine=name).engine)
        states[name] = funcbp.init_state(net, _optimizer(name, net), jax.random.key(0), rule=rule)
        jax.block_until_ready(epochs[name](states[name], x, y))  # compile and warm
    seconds = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            start = time.perf_counter()
            jax.block_until_ready(epochs[name](states[name], x, y))
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) / (len(parts.train) // BATCH) for name, s in
            seconds.items()}  # fmt: skip


def _angles(histories: list[dict], key: str) -> str:
    rows = [h[key][-1] for h in histories]
    values = np.array([[np.nan if v is None else v for v in row] for row in rows], float)
    medians = np.median(values, axis=0)
    return "-" if np.all(np.isnan(medians)) else " ".join(f"{v:.0f}" for v in medians)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    # The forward gradient's noisy updates are "large updates"; the table says what they did.
    warnings.simplefilter("ignore", funcbp.diagnostics.DiagnosticWarning)
    parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2,
                                           seed=0))  # fmt: skip
    names = ["backprop", *rules.NAMES]
    print(f"digits: {len(parts.train)} train, {len(parts.test)} test rows; {args.epochs} "
          f"epochs of batch {BATCH}; {args.seeds} seeds per rule; jax {jax.__version__}, "
          f"{jax.devices()[0].device_kind}\n")  # fmt: skip
    for title, sizes in NETWORKS.items():
        net = funcbp.MLP(sizes, activation="tanh", cost="softmax_cross_entropy")
        histories = {name: [_train(net, name, parts, seed, args.epochs)
                            for seed in range(args.seeds)] for name in names}  # fmt: skip
        times = _step_times(net, names, parts, args.rounds)
        print(f"{title}")
        header = (f"  {'rule':<26} {'test acc':>8}  {'range':<13} {'step':>6}  "
                  "angle to grad (deg)   B to W^T (deg)")  # fmt: skip
        print(header)
        for name in names:
            accuracy = [h["test_accuracy"][-1] for h in histories[name]]
            ratio = times[name] / times["backprop"]
            align = _angles(histories[name], "alignment_angle") if name != "backprop" else "-"
            feedback = _angles(histories[name], "feedback_angle") if name != "backprop" else "-"
            print(f"  {name:<26} {statistics.median(accuracy):8.4f}  "
                  f"{min(accuracy):.3f}-{max(accuracy):.3f}   {ratio:5.2f}x  {align:<21} "
                  f"{feedback}")  # fmt: skip
        print(f"  (backprop: {times['backprop'] * 1e3:.3f} ms per step)\n")


if __name__ == "__main__":
    main()
