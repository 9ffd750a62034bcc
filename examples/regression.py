"""Regression of a noisy sine with MSE, then the hand-derived gradient used beyond training.

Shows three things:

1. An MSE fit of ``y = sin(x) + 0.1 noise`` (``funcbp.data.load("regression")``) by a
   1-32-32-1 network with one tanh and one gelu hidden layer, trained with Adam on the
   full batch in blocks of steps fused by ``jax.lax.scan``.
2. ``net.backprop_full``: besides the parameter gradients, the backward pass returns
   ``input_grad = dLoss/dx`` (saliency) and every layer's delta.
3. ``net.apply_custom_vjp`` inside ``jax.grad`` of a larger function (a Huber loss
   that is not one of funcbp's costs): ``jax.grad`` then differentiates the network by
   the hand-derived backward pass instead of tracing ``net.apply``.

    python examples/regression.py
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import funcbp

BLOCK = 200  # steps per compiled block; the host logs once per block


def main(argv=None):
    parser = argparse.ArgumentParser(description="MSE regression of a noisy sine.")
    parser.add_argument(
        "--steps", type=int, default=1000, help="Adam steps (full batch), in whole blocks"
    )
    args = parser.parse_args(argv)

    parts = funcbp.data.split(funcbp.data.load("regression"), validation=0.0, test=0.2, seed=0)
    x, y = jnp.asarray(parts.train.x), jnp.asarray(parts.train.y)  # [205, 1], [205, 1]
    x_test, y_test = jnp.asarray(parts.test.x), jnp.asarray(parts.test.y)  # [51, 1], [51, 1]

    net = funcbp.MLP((1, 32, 32, 1), activation=("tanh", "gelu"), cost="mse")
    params = net.init(jax.random.key(0))
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    def step(carry, _):
        params, opt_state = carry
        loss, grads = net.backprop(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def train_block(params, opt_state):
        return jax.lax.scan(step, (params, opt_state), length=BLOCK)

    for block in range(1, max(1, args.steps // BLOCK) + 1):
        (params, opt_state), losses = train_block(params, opt_state)
        print(f"step {block * BLOCK:5d}  train mse {float(losses[-1]):.4f}")

    # Evaluate under jit too: eager JAX would compile every small operation on its own.
    mse = jax.jit(net.loss)
    print(f"train mse {float(mse(params, x, y)):.4f}")
    print(f"test mse {float(mse(params, x_test, y_test)):.4f}  (noise variance 0.0100)")

    # Saliency: dLoss/dx from the same backward pass, checked against jax.grad in x.
    result = jax.jit(net.backprop_full)(params, x_test, y_test)
    reference = jax.jit(jax.grad(net.loss, argnums=1))(params, x_test, y_test)
    error = float(jnp.max(jnp.abs(result.input_grad - reference)))
    print(
        f"backprop_full: input_grad {result.input_grad.shape}, max |diff| vs jax.grad {error:.1e}"
    )

    # A larger function around the network: apply_custom_vjp's VJP is the hand-derived one.
    def huber_objective(params, apply):
        return jnp.mean(optax.huber_loss(apply(params, x), y, delta=0.1))

    grad_fn = jax.jit(jax.grad(huber_objective), static_argnums=1)
    by_backprop = grad_fn(params, net.apply_custom_vjp)
    by_autodiff = grad_fn(params, net.apply)
    diffs = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), by_backprop, by_autodiff)
    gap = max(float(d) for d in jax.tree.leaves(diffs))
    print(f"jax.grad(Huber objective), apply_custom_vjp vs apply: max |diff| {gap:.1e}")


if __name__ == "__main__":
    main()
