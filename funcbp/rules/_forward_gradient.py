"""Forward gradients: one forward-mode derivative along a random direction, no backward pass.

For a direction ``v`` drawn from ``N(0, I)`` over all the parameters, ``jax.jvp`` of the
loss gives the directional derivative ``d = grad . v`` in the same pass as the loss, and
the update is::

    g = (grad . v) v          E[g] = E[v v^T] grad = grad   (unbiased)

averaged over ``directions`` independent ``v``. Baydin, Pearlmutter, Syme, Wood and
Torr 2022, "Gradients without backpropagation". Its variance grows with the number of
parameters: expect slow learning on wide networks. The directions come from a key
kept in the rule's state (its raw ``uint32`` data, so that it checkpoints as any
array), which moves on after every step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from funcbp.backprop import Network, Params, RuleState, forward, loss_of_output
from funcbp.rules._learning_rule import LearningRule, cached_rule

Array = jax.Array


def _key_data(key: Array, net: Network, params: Params) -> RuleState:
    return jax.random.key_data(key)


def _next_key(state: RuleState, old: Params, new: Params) -> RuleState:
    return jax.random.key_data(jax.random.split(jax.random.wrap_key_data(state))[0])


def directions_of(state: RuleState, params: Params, count: int) -> Params:
    """``count`` directions ``v`` ``N(0, I)``, each leaf stacked ``[count, *leaf.shape]``."""
    key = jax.random.split(jax.random.wrap_key_data(state))[1]
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    drawn = [jax.random.normal(k, (count, *a.shape), a.dtype) for k, a in
             zip(keys, leaves, strict=True)]  # fmt: skip
    return jax.tree.unflatten(tree, drawn)


@cached_rule
def forward_gradient(directions: int = 1) -> LearningRule:
    """``(grad . v) v`` by ``jax.jvp``, averaged over ``directions`` random ``v``."""
    if (
        isinstance(directions, bool)
        or not isinstance(directions, int)
        or not (1 <= directions <= 10_000)
    ):
        raise ValueError(f"forward_gradient: directions must be an integer in [1, 10000], "
                         f"got {directions!r}")  # fmt: skip

    def gradient(net, params, state, x, y, sample_weight=None, key=None):
        def loss(p: Params) -> Array:
            return loss_of_output(net, p, forward(net, p, x, key).out, y, sample_weight)

        def along(v: Params) -> tuple[Array, Array]:
            return jax.jvp(loss, (params,), (v,))

        vs = directions_of(state, params, directions)
        values, slopes = jax.vmap(along)(vs)
        update = jax.tree.map(lambda v: jnp.mean(slopes.reshape(-1, *([1] * (v.ndim - 1))) * v,
                                                 axis=0).astype(v.dtype), vs)  # fmt: skip
        return values[0], update

    return LearningRule("forward_gradient", gradient, init=_key_data, update=_next_key)
