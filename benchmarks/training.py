"""Whole training runs: ``funcbp.fit`` against scikit-learn, a plain ``jax.jit`` loop and NumPy.

Two workloads, every method doing the same work:

* digits (1797 8x8 images, 80/20 train/test split with seed 0, standardised on
  the training part): 64-128-128-10 ReLU, Glorot uniform weights (the rule
  scikit-learn uses) and zero biases, softmax cross-entropy, Adam lr 1e-3,
  batch 64, 30 epochs, test accuracy after every epoch. Methods:
  ``funcbp.fit`` with ``engine="backprop"`` and ``engine="autodiff"`` (all 30
  epochs in one compiled call, evaluation on the device); "funcbp cached": the
  backprop run in a process that first calls ``funcbp.enable_compilation_cache``
  on a cache an unmeasured run filled (a script run a second time); scikit-learn's
  ``MLPClassifier`` (same architecture, optimiser and batch size, no L2, no early
  stopping); and a plain loop a user would write: a ``jax.jit`` step
  (``jax.value_and_grad`` + ``optax.adam``) called once per mini-batch from Python
  over numpy-shuffled batches, with a jitted test accuracy after each epoch.
  The "scikit-learn" row, the baseline of the ratios, limits its BLAS
  (OpenBLAS) to one thread with threadpoolctl; "sklearn all thr" is its
  default, one BLAS thread per CPU; on a small machine busy with other work its
  threads can spend seconds waiting for each other (we saw 0.4 to 5.8 s a run).
  funcbp and the jit loop drop the 30 samples left over after 22 full batches
  (a different 30 each epoch); scikit-learn trains on a 23rd, partial batch.
* XOR: 2-4-1, sigmoid hidden layer, identity output, sigmoid binary
  cross-entropy, full batch of 4, SGD lr 1.0, 5000 steps. Methods: forward and
  backward written by hand in NumPy (float32); a ``jax.jit`` step called 5000
  times from Python; ``funcbp.fit(..., epochs=5000, batch_size=None)``, which
  runs all 5000 steps inside one compiled program.

The jit loops and the NumPy loop start from the parameters ``funcbp.fit`` draws
with its default key, so the XOR runs follow the same trajectory. The jit loops
run with XLA's default options, as plain JAX does; funcbp's runs first call
``funcbp.use_fast_cpu_compile()`` (two XLA:CPU options, as ``funcbp train`` sets),
except "fused, XLA dflt": the same fused XOR run without that call, what a
script gains by it.

How each number is measured:

* Every measured run happens in a fresh process (``--one NAME`` prints one JSON
  line), so the first run pays JAX's compilation as a user's first call does.
  Processes run interleaved (A, B, C, A, B, C, ...) for ``--repeats`` rounds;
  the tables give medians.
* import s: ``import jax, optax, funcbp`` and starting JAX's CPU backend
  (scikit-learn: ``import sklearn.neural_network``; NumPy: ``import numpy``).
* total s: one whole first run, from building the model to the final accuracy
  on the host: initialisation, compilation, training, evaluation. Loading,
  splitting and standardising the data happen before the clock starts (and,
  for NumPy XOR, drawing the shared initial parameters).
* compile s: the part of that first run that JAX itself reports through
  ``jax.monitoring`` as tracing, lowering to MLIR and XLA compilation
  (``/jax/core/compile/*`` events), summed over every program compiled during
  the run, the small eager operations of initialisation included.
* 2nd s: the same run repeated in the same process, with the same objects
  (the jit loops' jitted functions, ``fit``'s network and optimizer): what a
  method keeps cached between calls ("2nd cmp s": any compile time inside it).
  ``fit`` with a new but identical optimizer object traces again and reuses
  XLA's executable (tests/test_train.py counts the compilations).
* ms/epoch and steps/s "after compile": from that second run, as
  (wall time - its compile time) / epochs (or steps). scikit-learn and NumPy
  compile nothing. "steps/s incl. compile" is steps / total s of the first run.
* Test accuracy over seeds (last, in the driving process, untimed): one run's
  accuracy is a few of the 359 test images, so the digits runs are repeated
  with seeds 0-39 (funcbp's ``key``, scikit-learn's ``random_state``), funcbp
  with Glorot uniform weights, as timed, and with its default initialiser for
  ReLU (He normal); means with their standard errors.

    python benchmarks/training.py [--repeats 3] [--only digits|xor] [--seeds 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings

from _fresh import run_fresh

DIGITS_SIZES = (64, 128, 128, 10)
DIGITS_LR = 1e-3
DIGITS_BATCH = 64
DIGITS_EPOCHS = 30
DIGITS_INIT = "glorot_uniform"  # scikit-learn's rule for ReLU weights (funcbp's "auto": He normal)
XOR_SIZES = (2, 4, 1)
XOR_LR = 1.0
XOR_STEPS = 5000

DIGITS_METHODS = (
    "funcbp backprop",
    "funcbp autodiff",
    "funcbp cached",
    "jit loop",
    "scikit-learn",
    "sklearn all thr",
)
XOR_METHODS = ("numpy loop", "jit loop (xor)", "funcbp fused (xor)", "fused, XLA dflt")
# XLA's default options: the plain loops, as plain JAX; funcbp without use_fast_cpu_compile().
PLAIN_JAX_METHODS = ("jit loop", "jit loop (xor)", "fused, XLA dflt")


# --- inside one measured process ------------------------------------------------------


def _import_time(name: str) -> float:
    """Seconds to import what ``name`` needs, the first thing this process does."""
    start = time.perf_counter()
    if name in ("scikit-learn", "sklearn all thr"):
        import sklearn.neural_network  # noqa: F401
    elif name == "numpy loop":
        import numpy  # noqa: F401
    else:
        import jax.numpy as jnp
        import optax  # noqa: F401

        import funcbp

        if name not in PLAIN_JAX_METHODS:  # the plain loops keep XLA's defaults
            funcbp.use_fast_cpu_compile()  # as `funcbp train` does, before the backend starts
        jnp.zeros(()).block_until_ready()  # start the backend
    return time.perf_counter() - start


def _digits_data():
    import funcbp

    data = funcbp.data.load("digits")
    parts, _ = funcbp.data.standardize(funcbp.data.split(data, validation=0.0, test=0.2, seed=0))
    return parts


def _digits_net(initializer: str = DIGITS_INIT):
    import funcbp

    return funcbp.MLP(DIGITS_SIZES, activation="relu", cost="softmax_cross_entropy",
                      initializer=initializer)  # fmt: skip


def _xor_net():
    import funcbp

    return funcbp.MLP(
        XOR_SIZES,
        activation="sigmoid",
        output_activation="identity",
        cost="sigmoid_binary_cross_entropy",
    )


def _xor_data():
    import numpy as np

    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([[0], [1], [1], [0]], np.float32)
    return x, y


def _initial_params(net, optimizer):
    """The parameters ``funcbp.fit`` starts from with its default key."""
    import jax

    import funcbp

    return funcbp.init_state(net, optimizer, jax.random.key(0)).params


def _funcbp_digits(
    engine: str, cache: str | None = None, initializer: str = DIGITS_INIT, seed: int = 0
):
    import jax
    import optax

    import funcbp

    if cache:
        funcbp.enable_compilation_cache(cache)
    parts, net = _digits_data(), _digits_net(initializer)
    optimizer = optax.adam(DIGITS_LR)  # built once, as the jit loop builds its step once

    def run():
        _, history = funcbp.fit(
            net,
            optimizer,
            parts.train,
            epochs=DIGITS_EPOCHS,
            batch_size=DIGITS_BATCH,
            engine=engine,
            eval={"test": parts.test},
            key=jax.random.key(seed),
        )
        return {"accuracy": history["test_accuracy"][-1], "epochs": len(history["epoch"])}

    return run


def _sklearn_digits(blas_threads: int | None, random_state: int = 0):
    import threadpoolctl
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    parts = _digits_data()
    if blas_threads is not None:
        threadpoolctl.threadpool_limits(limits=blas_threads, user_api="blas")

    def run():
        model = MLPClassifier(
            hidden_layer_sizes=DIGITS_SIZES[1:-1],
            activation="relu",
            solver="adam",
            learning_rate_init=DIGITS_LR,
            batch_size=DIGITS_BATCH,
            max_iter=DIGITS_EPOCHS,
            alpha=0.0,
            shuffle=True,
            random_state=random_state,
            tol=0,
            n_iter_no_change=1000,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(parts.train.x, parts.train.y)
        return {"accuracy": model.score(parts.test.x, parts.test.y), "epochs": model.n_iter_}

    return run


def _jit_loop_digits():
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    parts, net = _digits_data(), _digits_net()
    optimizer = optax.adam(DIGITS_LR)

    def forward(params, x):
        for layer in params[:-1]:
            x = jax.nn.relu(x @ layer["w"] + layer["b"])
        return x @ params[-1]["w"] + params[-1]["b"]

    def loss_fn(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def accuracy(params, x, y):
        return jnp.mean(jnp.argmax(forward(params, x), axis=-1) == y)

    x, y = parts.train.x, parts.train.y
    n_batches = len(x) // DIGITS_BATCH

    def run():
        params = _initial_params(net, optimizer)
        opt_state = optimizer.init(params)
        x_test, y_test = jnp.asarray(parts.test.x), jnp.asarray(parts.test.y)
        rng = np.random.default_rng(0)
        history = []
        for _ in range(DIGITS_EPOCHS):
            order = rng.permutation(len(x))[: n_batches * DIGITS_BATCH]
            for rows in order.reshape(n_batches, DIGITS_BATCH):
                params, opt_state, _ = step(params, opt_state, x[rows], y[rows])
            history.append(float(accuracy(params, x_test, y_test)))
        return {"accuracy": history[-1], "epochs": len(history)}

    return run


def _numpy_xor():
    import numpy as np
    import optax

    x, y = _xor_data()
    net = _xor_net()
    start = [(np.array(p["w"]), np.array(p["b"])) for p in _initial_params(net, optax.sgd(XOR_LR))]

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def run():
        layers = [(w.copy(), b.copy()) for w, b in start]
        for _ in range(XOR_STEPS):
            # forward, keeping each layer's input and activation
            inputs, a = [], x
            for i, (w, b) in enumerate(layers):
                inputs.append(a)
                z = a @ w + b
                a = z if i == len(layers) - 1 else sigmoid(z)
            loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
            # backward: fused sigmoid + binary cross-entropy delta, then the chain rule
            delta = (sigmoid(z) - y) / y.size
            for i in reversed(range(len(layers))):
                w, b = layers[i]
                grad_w, grad_b = inputs[i].T @ delta, delta.sum(axis=0)
                if i > 0:
                    delta = (delta @ w.T) * inputs[i] * (1.0 - inputs[i])
                w -= XOR_LR * grad_w
                b -= XOR_LR * grad_b
        a = x
        for i, (w, b) in enumerate(layers):
            a = a @ w + b if i == len(layers) - 1 else sigmoid(a @ w + b)
        return {"accuracy": float(np.mean((a > 0) == (y > 0.5))), "loss": float(loss)}

    return run


def _jit_loop_xor():
    import jax
    import jax.numpy as jnp
    import optax

    x_host, y_host = _xor_data()
    net = _xor_net()
    optimizer = optax.sgd(XOR_LR)

    def forward(params, x):
        for layer in params[:-1]:
            x = jax.nn.sigmoid(x @ layer["w"] + layer["b"])
        return x @ params[-1]["w"] + params[-1]["b"]

    def loss_fn(params, x, y):
        return optax.sigmoid_binary_cross_entropy(forward(params, x), y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def accuracy(params, x, y):
        return jnp.mean((forward(params, x) > 0) == (y > 0.5))

    def run():
        params = _initial_params(net, optimizer)
        opt_state = optimizer.init(params)
        x, y = jnp.asarray(x_host), jnp.asarray(y_host)
        for _ in range(XOR_STEPS):
            params, opt_state, loss = step(params, opt_state, x, y)
        return {"accuracy": float(accuracy(params, x, y)), "loss": float(loss)}

    return run


def _funcbp_xor():
    import optax

    import funcbp

    x, y = _xor_data()
    net = _xor_net()
    optimizer = optax.sgd(XOR_LR)

    def run():
        state, history = funcbp.fit(net, optimizer, (x, y), epochs=XOR_STEPS, batch_size=None)
        metrics = funcbp.evaluate(net, state.params, x, y)
        return {"accuracy": float(metrics["accuracy"]), "loss": history["train_loss"][-1]}

    return run


RUNNERS = {
    "funcbp backprop": lambda: _funcbp_digits("backprop"),
    "funcbp autodiff": lambda: _funcbp_digits("autodiff"),
    "funcbp cached": lambda: _funcbp_digits("backprop", os.environ["FUNCBP_BENCH_CACHE"]),
    "jit loop": _jit_loop_digits,
    "scikit-learn": lambda: _sklearn_digits(1),
    "sklearn all thr": lambda: _sklearn_digits(None),
    "numpy loop": _numpy_xor,
    "jit loop (xor)": _jit_loop_xor,
    "funcbp fused (xor)": _funcbp_xor,
    "fused, XLA dflt": _funcbp_xor,
}


def one(name: str) -> dict:
    """Measures ``name`` in this (fresh) process: import, a first run, a second run."""
    import_s = _import_time(name)
    import jax.numpy as jnp

    jnp.zeros(()).block_until_ready()  # the data helpers use funcbp; keep startup off the clock
    from funcbp._jax.compile_clock import CompileClock  # after the timed import

    clock = CompileClock()
    run = RUNNERS[name]()
    result = {"import_s": import_s}
    for label in ("first", "second"):
        compiled_before = clock.seconds
        start = time.perf_counter()
        out = run()
        result[f"{label}_s"] = time.perf_counter() - start
        result[f"{label}_compile_s"] = clock.seconds - compiled_before
        result[f"{label}_out"] = out
    return result


# --- the driver ---------------------------------------------------------------------


def _median(runs: list[dict], key) -> float:
    return statistics.median(key(r) for r in runs)


def _summary(runs: list[dict], units: int) -> dict[str, float]:
    """Medians over processes; ``units``: epochs or steps per run."""
    return {
        "import": _median(runs, lambda r: r["import_s"]),
        "total": _median(runs, lambda r: r["first_s"]),
        "compile": _median(runs, lambda r: r["first_compile_s"]),
        "second": _median(runs, lambda r: r["second_s"]),
        "second_compile": _median(runs, lambda r: r["second_compile_s"]),
        "per_unit": _median(runs, lambda r: (r["second_s"] - r["second_compile_s"]) / units),
        "accuracy": _median(runs, lambda r: r["first_out"]["accuracy"]),
        "min_accuracy": min(
            min(r["first_out"]["accuracy"], r["second_out"]["accuracy"]) for r in runs
        ),
    }


def _fmt_compile(seconds: float) -> str:
    return f"{seconds:.2f}" if seconds > 0 else "-"


def _digits_table(runs: dict[str, list[dict]]) -> None:
    s = {name: _summary(r, DIGITS_EPOCHS) for name, r in runs.items()}
    base = s["scikit-learn"]
    parts = _digits_data()
    print(
        f"digits 64-128-128-10 relu, adam 1e-3, batch 64, {DIGITS_EPOCHS} epochs "
        f"({len(parts.train)} train / {len(parts.test)} test)"
    )
    header = (
        f"{'method':<17} {'test acc':>8} {'import s':>8} {'total s':>8} {'compile s':>9}"
        f" {'2nd s':>6} {'2nd cmp s':>9} {'ms/epoch':>9} {'total/sk':>8} {'epoch/sk':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, m in s.items():
        print(
            f"{name:<17} {m['accuracy']:>8.4f} {m['import']:>8.2f} {m['total']:>8.2f}"
            f" {_fmt_compile(m['compile']):>9} {m['second']:>6.2f}"
            f" {_fmt_compile(m['second_compile']):>9} {m['per_unit'] * 1e3:>9.2f}"
            f" {m['total'] / base['total']:>8.2f} {m['per_unit'] / base['per_unit']:>8.2f}"
        )
    print(
        "total s: first run in a fresh process; compile s: its JAX tracing + lowering + XLA\n"
        "compile; 2nd s: the same run again in that process, 2nd cmp s: its compile time;\n"
        "ms/epoch: (2nd s - 2nd cmp s) / epochs; total/sk, epoch/sk: time ratios to\n"
        "scikit-learn with one BLAS thread (below 1: faster)"
    )


def _xor_table(runs: dict[str, list[dict]]) -> None:
    s = {name: _summary(r, XOR_STEPS) for name, r in runs.items()}
    base = s["numpy loop"]
    print(f"XOR 2-4-1 sigmoid, sigmoid BCE, full batch 4, sgd lr {XOR_LR}, {XOR_STEPS} steps")
    header = (
        f"{'method':<19} {'acc':>5} {'loss':>7} {'total s':>8} {'compile s':>9}"
        f" {'steps/s incl':>12} {'steps/s after':>13} {'total/np':>8} {'step/np':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, m in s.items():
        loss = statistics.median(r["first_out"]["loss"] for r in runs[name])
        after = 1 / m["per_unit"]
        print(
            f"{name:<19} {m['min_accuracy']:>5.2f} {loss:>7.4f} {m['total']:>8.3f}"
            f" {_fmt_compile(m['compile']):>9} {XOR_STEPS / m['total']:>12,.0f}"
            f" {after:>13,.0f} {m['total'] / base['total']:>8.2f}"
            f" {m['per_unit'] / base['per_unit']:>8.2f}"
        )
    print(
        "acc: the lowest final training accuracy over every run; loss: final training loss\n"
        "steps/s incl: steps / total s; after: from the 2nd run, its compile time taken out\n"
        "total/np, step/np: time ratios to the NumPy loop (below 1: faster)"
    )


def _accuracy_over_seeds(seeds: int) -> None:
    """Final test accuracy on digits over ``seeds`` seeds: one seed is a few test images."""
    import numpy as np

    results = {
        f"funcbp, {initializer} init": [
            _funcbp_digits("backprop", initializer=initializer, seed=seed)()["accuracy"]
            for seed in range(seeds)
        ]
        for initializer in (DIGITS_INIT, "auto")
    }
    results["scikit-learn"] = [
        _sklearn_digits(1, random_state=seed)()["accuracy"] for seed in range(seeds)
    ]
    print(f"digits test accuracy over seeds 0-{seeds - 1} (the same {DIGITS_EPOCHS}-epoch runs)")
    for name, accuracies in results.items():
        a = np.asarray(accuracies)
        error = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
        print(f"  {name:<28} mean {a.mean():.4f} ± {error:.4f}  min {a.min():.4f}  "
              f"max {a.max():.4f}")  # fmt: skip
    print(
        "± is the standard error of the mean. scikit-learn draws weights and biases from\n"
        "Glorot's uniform range; funcbp's glorot_uniform draws the weights so, biases 0;\n"
        "funcbp's auto init for ReLU is He normal with zero biases"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per method")
    parser.add_argument("--only", choices=("digits", "xor"), help="run one workload")
    parser.add_argument("--seeds", type=int, default=40, help="digits accuracy over this many")
    parser.add_argument("--one", choices=tuple(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return

    import jax

    device = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {device.platform} ({device.device_kind}), float32, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    print(f"median of {args.repeats} fresh processes per method, interleaved\n")
    if args.only in (None, "digits"):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["FUNCBP_BENCH_CACHE"] = cache  # inherited by the measured processes
            run_fresh(__file__, ["funcbp cached"], 1)  # fills the cache; not measured
            _digits_table(run_fresh(__file__, DIGITS_METHODS, args.repeats))
        print()
    if args.only in (None, "xor"):
        _xor_table(run_fresh(__file__, XOR_METHODS, args.repeats))
        print()
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    if args.only in (None, "digits") and args.seeds:
        print()  # last: 40 runs in this process, after the measured ones
        _accuracy_over_seeds(args.seeds)


if __name__ == "__main__":
    main()
