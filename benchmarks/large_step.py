"""One training step of the large MLP: funcbp's engines, plain JAX, Flax NNX, Equinox, PyTorch.

784-2048-2048-10 ReLU, softmax cross-entropy, SGD with momentum 0.9 (lr 0.01),
batch 512, float32, one device. The Flax NNX and Equinox steps are written as
each library's documentation writes a training step (``nnx.jit`` with
``nnx.Optimizer``; ``eqx.filter_jit`` over ``eqx.nn.MLP`` under ``jax.vmap``).
Each method's step updates parameters and momentum in place of the last ones;
the time of a step is wall time until its result is ready
(``block_until_ready``; PyTorch eager is synchronous on CPU).
Methods are timed in one process, interleaved round by round (all of method A's
steps of a round, then B's, ...), and the table gives medians over every round,
with the best NumPy float32 matmul rate of the same run as the machine's peak
(FLOP per step: 6 x weights x batch).

    python benchmarks/large_step.py [--rounds 7] [--steps 5]
    # rows for what is installed: pip install torch flax equinox
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import funcbp

SIZES = (784, 2048, 2048, 10)
BATCH = 512
LR, MOMENTUM = 0.01, 0.9


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, SIZES[0]), np.float32)
    y = rng.integers(0, SIZES[-1], BATCH)
    return x, y


def _funcbp_step(engine: str):
    net = funcbp.MLP(SIZES, activation="relu", cost="softmax_cross_entropy")
    optimizer = optax.sgd(LR, momentum=MOMENTUM)
    step = jax.jit(funcbp.make_train_step(net, optimizer, engine))
    state = funcbp.init_state(net, optimizer, jax.random.key(0))
    x, y = map(jnp.asarray, _data())

    def run():
        nonlocal state
        state, (loss, _) = step(state, x, y)
        loss.block_until_ready()

    return run


def _jit_step():
    net = funcbp.MLP(SIZES, activation="relu", cost="softmax_cross_entropy")
    optimizer = optax.sgd(LR, momentum=MOMENTUM)

    def loss_fn(params, x, y):
        for layer in params[:-1]:
            x = jax.nn.relu(x @ layer["w"] + layer["b"])
        logits = x @ params[-1]["w"] + params[-1]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params = net.init(jax.random.key(0))
    return _carrying(step, params, optimizer.init(params))


def _carrying(step, params, opt_state):
    """``run()``: one ``step(params, opt_state, x, y) -> (params, opt_state, loss)``, carried."""
    x, y = map(jnp.asarray, _data())

    def run():
        nonlocal params, opt_state
        params, opt_state, loss = step(params, opt_state, x, y)
        loss.block_until_ready()

    return run


def _flax_nnx_step():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.layers = nnx.List(
                [nnx.Linear(n_in, n_out, rngs=rngs) for n_in, n_out in itertools.pairwise(SIZES)]
            )

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = jax.nn.relu(layer(x))
            return self.layers[-1](x)

    model = Net(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(LR, momentum=MOMENTUM), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    x, y = map(jnp.asarray, _data())
    return lambda: step(model, optimizer, x, y).block_until_ready()


def _equinox_step():
    import equinox as eqx

    model = eqx.nn.MLP(SIZES[0], SIZES[-1], width_size=SIZES[1], depth=len(SIZES) - 2,
                       activation=jax.nn.relu, key=jax.random.key(0))  # fmt: skip
    optimizer = optax.sgd(LR, momentum=MOMENTUM)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state, x, y):
        def loss_fn(model):
            logits = jax.vmap(model)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    return _carrying(step, model, opt_state)


def _torch_step():
    import torch

    torch.manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(SIZES)):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    x, y = (torch.from_numpy(a) for a in _data())

    def run():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    return run


def _numpy_peak(rounds: int) -> float:
    """Best FLOP/s of float32 NumPy products of the step's own shapes and a square."""
    rng = np.random.default_rng(0)
    best = 0.0
    for m, k, n in ((512, 2048, 2048), (2048, 2048, 2048), (512, 784, 2048)):
        a = rng.standard_normal((m, k), np.float32)
        b = rng.standard_normal((k, n), np.float32)
        a @ b
        for _ in range(rounds):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * m * k * n / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per method per round")
    args = parser.parse_args()

    methods = {
        "funcbp backprop": _funcbp_step("backprop"),
        "funcbp autodiff": _funcbp_step("autodiff"),
        "jax.jit step": _jit_step(),
    }
    optional = {"flax": ("flax nnx", _flax_nnx_step), "equinox": ("equinox", _equinox_step),
                "torch": ("torch eager", _torch_step)}  # fmt: skip
    for module, (name, make) in optional.items():
        try:
            version = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            print(f"({module} is not installed: no {name} row)")
            continue
        methods[f"{name} {version}"] = make()
    for run in methods.values():  # compile, allocate, warm up
        run()
        run()
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name, run in methods.items():
            for _ in range(args.steps):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    peak = _numpy_peak(args.rounds)
    flop = 6 * funcbp.MLP(SIZES).num_params * BATCH
    base = statistics.median(times["jax.jit step"])
    torch_name = next((n for n in methods if n.startswith("torch")), None)
    print(f"784-2048-2048-10 relu, SGD momentum, batch {BATCH}, float32; jax {jax.__version__}; "
          f"NumPy float32 matmul peak {peak / 1e9:.1f} GFLOP/s")  # fmt: skip
    print(
        f"{'method':<22} {'ms/step':>8} {'min ms':>7} {'of peak':>8} {'vs jit':>7} {'vs torch':>9}"
    )
    for name, ts in times.items():
        median = statistics.median(ts)
        vs_torch = median / statistics.median(times[torch_name]) if torch_name else float("nan")
        print(f"{name:<22} {median * 1e3:>8.1f} {min(ts) * 1e3:>7.1f} "
              f"{flop / median / peak:>8.1%} {median / base:>7.2f} {vs_torch:>9.2f}")  # fmt: skip
    print(
        f"{args.rounds} rounds x {args.steps} steps per method, interleaved; "
        "vs jit, vs torch: time ratios (below 1: faster)"
    )


if __name__ == "__main__":
    main()
