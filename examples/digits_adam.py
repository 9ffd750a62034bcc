"""Digits with Adam on shuffled mini-batches: the plain epoch loop, written out.

Shows the loop that ``funcbp.fit`` hides: each epoch draws a permutation with
``jax.random.permutation``, cuts it into mini-batches of 64 and calls one jitted
step (``net.backprop`` + ``optax.adam``) per batch from Python. Before training,
``funcbp.check_gradients`` compares the hand-derived gradient with ``jax.grad``
and finite differences on 32 samples, the check to run after changing a network.

    python examples/digits_adam.py
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import funcbp

BATCH_SIZE = 64


def main(argv=None):
    parser = argparse.ArgumentParser(description="Digits with a 64-128-128-10 ReLU MLP and Adam.")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training data")
    args = parser.parse_args(argv)

    parts, _ = funcbp.data.standardize(
        funcbp.data.split(funcbp.data.load("digits"), validation=0.0, test=0.2, seed=0)
    )
    x, y = jnp.asarray(parts.train.x), jnp.asarray(parts.train.y)  # [1438, 64], [1438]
    x_test, y_test = jnp.asarray(parts.test.x), jnp.asarray(parts.test.y)  # [359, 64], [359]

    net = funcbp.MLP(
        (64, 128, 128, 10),
        activation="relu",
        output_activation="identity",
        cost="softmax_cross_entropy",
    )
    key, init_key = jax.random.split(jax.random.key(0))
    params = net.init(init_key)

    report = funcbp.check_gradients(net, params, x[:32], y[:32])
    print(f"gradient check ({report.mode}, {net.num_params} parameters): ok={report.ok}")

    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, rows):
        loss, grads = net.backprop(params, x[rows], y[rows])  # the batch is gathered on device
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def accuracy(params, x, y):
        return jnp.mean(jnp.argmax(net.apply(params, x), axis=1) == y)

    n_batches = len(x) // BATCH_SIZE  # the few samples left over sit out one epoch each
    for epoch in range(1, args.epochs + 1):
        key, shuffle_key = jax.random.split(key)
        order = jax.random.permutation(shuffle_key, len(x))
        total = 0.0
        for b in range(n_batches):
            rows = order[b * BATCH_SIZE : (b + 1) * BATCH_SIZE]  # [64] sample indices
            params, opt_state, loss = step(params, opt_state, rows)
            total += loss  # a device array: no host sync per step
        if epoch % 5 == 0 or epoch in (1, args.epochs):
            mean_loss, test_acc = float(total) / n_batches, float(accuracy(params, x_test, y_test))
            print(f"epoch {epoch:3d}  train loss {mean_loss:.4f}  test acc {test_acc:.3f}")

    print(f"train accuracy {float(accuracy(params, x, y)):.1%}")
    print(f"test accuracy {float(accuracy(params, x_test, y_test)):.1%}")


if __name__ == "__main__":
    main()
