"""Iris with full-batch Rprop: split, standardise, one jitted step in a Python loop.

Shows the data helpers (``funcbp.data.split`` and ``standardize``, whose mean and
std come from the training part only) and ``funcbp.optim.rprop``, a sign-based
optimizer that wants the gradient of the same objective at every step, hence full
batch. The 4-16-3 tanh network's logits go into ``softmax_cross_entropy`` with
integer labels, plus a small l2 penalty; the gradient is ``net.backprop``.

    python examples/iris_rprop.py
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import funcbp


def main(argv=None):
    parser = argparse.ArgumentParser(description="Iris with a 4-16-3 tanh MLP and Rprop.")
    parser.add_argument("--steps", type=int, default=200, help="Rprop steps (full batch)")
    args = parser.parse_args(argv)

    parts, _ = funcbp.data.standardize(
        funcbp.data.split(funcbp.data.load("iris"), validation=0.0, test=0.2, seed=1)
    )
    x, y = jnp.asarray(parts.train.x), jnp.asarray(parts.train.y)  # [120, 4], [120]
    x_test, y_test = jnp.asarray(parts.test.x), jnp.asarray(parts.test.y)  # [30, 4], [30]
    print(f"train {len(parts.train)} samples, test {len(parts.test)} samples")

    # Without the l2 penalty Rprop's growing step sizes drive the training loss to 0 and
    # the weights to large values; test accuracy then drifts down as training goes on.
    net = funcbp.MLP(
        (4, 16, 3),
        activation="tanh",
        output_activation="identity",
        cost="softmax_cross_entropy",
        l2=1e-2,
    )
    params = net.init(jax.random.key(0))
    optimizer = funcbp.optim.rprop(learning_rate=0.01)  # the initial per-weight step size
    opt_state = optimizer.init(params)

    @jax.jit
    def accuracy(params, x, y):
        return jnp.mean(jnp.argmax(net.apply(params, x), axis=1) == y)

    @jax.jit
    def step(params, opt_state):
        loss, grads = net.backprop(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    for i in range(args.steps):
        params, opt_state, loss = step(params, opt_state)
        if i % 40 == 0 or i == args.steps - 1:
            train_acc = float(accuracy(params, x, y))
            print(f"step {i:4d}  loss {float(loss):.4f}  train acc {train_acc:.3f}")

    print(f"train accuracy {float(accuracy(params, x, y)):.1%}")
    print(f"test accuracy {float(accuracy(params, x_test, y_test)):.1%}")


if __name__ == "__main__":
    main()
