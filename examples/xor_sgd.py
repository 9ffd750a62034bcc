"""XOR by plain full-batch SGD, every gradient from the hand-derived backward pass.

Shows the smallest complete research loop on the functional API: a 2-4-1 network
with sigmoid hidden units and one logit output trained with
``sigmoid_binary_cross_entropy``, ``net.backprop`` for the gradient, ``optax.sgd``
for the update, and all steps fused into one compiled program with
``jax.lax.scan``, so the host only sees the loss curve at the end.

    python examples/xor_sgd.py
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import funcbp

SEED = 0
LEARNING_RATE = 1.0


def main(argv=None):
    parser = argparse.ArgumentParser(description="XOR with a 2-4-1 sigmoid MLP and plain SGD.")
    parser.add_argument("--steps", type=int, default=5000, help="SGD steps (full batch)")
    args = parser.parse_args(argv)

    data = funcbp.data.load("xor")
    x = jnp.asarray(data.x)  # [4, 2]
    y = jnp.asarray(data.y, jnp.float32)[:, None]  # labels [4] -> targets [4, 1] in {0, 1}

    net = funcbp.MLP(
        (2, 4, 1),
        activation="sigmoid",
        output_activation="identity",  # the output is a logit; the cost applies the sigmoid
        cost="sigmoid_binary_cross_entropy",
    )
    params = net.init(jax.random.key(SEED))
    optimizer = optax.sgd(LEARNING_RATE)

    def step(carry, _):
        params, opt_state = carry
        loss, grads = net.backprop(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def train(params, opt_state):
        # One XLA program for every step: no Python in the loop, no host round trips.
        return jax.lax.scan(step, (params, opt_state), length=args.steps)

    (params, _), losses = train(params, optimizer.init(params))
    for i in range(0, args.steps, max(1, args.steps // 5)):
        print(f"step {i:5d}  loss {float(losses[i]):.4f}")
    print(f"step {args.steps:5d}  loss {float(net.loss(params, x, y)):.4f}")

    probs = jax.nn.sigmoid(net.apply(params, x))[:, 0]  # [4]
    predictions = (probs > 0.5).astype(jnp.int32)
    print("x1 x2  target  p(1)    predicted")
    for (x1, x2), target, p, pred in zip(data.x, data.y, probs, predictions, strict=True):
        print(f" {x1:.0f}  {x2:.0f}     {target}    {float(p):.4f}  {int(pred)}")
    accuracy = float(jnp.mean(predictions == jnp.asarray(data.y)))
    print(f"accuracy {accuracy:.0%}")


if __name__ == "__main__":
    main()
