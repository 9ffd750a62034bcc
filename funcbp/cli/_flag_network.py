"""The network that ``funcbp check``'s flags describe (``--sizes``, ``--activation``, ...),
and a random batch for it."""

from __future__ import annotations

import argparse

import jax

from funcbp import losses
from funcbp.cli import config as _config
from funcbp.errors import ConfigError


def flag_network(args: argparse.Namespace, key):
    """The network of ``--sizes``, ``--activation``, ... and a random batch for it.

    Raises:
      ConfigError: naming the flag whose value ``MLP`` or the cost refuses.
    """

    def flag(option: str) -> str:
        return "--" + option.replace("_", "-")

    options = {"activation": args.activation, "output_activation": args.output_activation,
               "cost": args.cost, "l2": args.l2}  # fmt: skip
    net = _config.build_mlp(args.sizes, options, name=flag)
    x, y = random_batch(net, key, args.batch)
    try:  # a width the cost does not take (one softmax output)
        losses.check_targets(net.resolved_cost, y, (args.batch, net.sizes[-1]))
    except ValueError as err:
        raise ConfigError(f"{flag('cost')}: {err}") from None
    return net, (x, y)


def random_batch(net, key, batch: int):
    """``(x, y)``: ``batch`` random inputs and targets of the kind the network's cost takes."""
    k_x, k_y = jax.random.split(key)
    x = jax.random.normal(k_x, (batch, net.sizes[0]))
    n_out = net.sizes[-1]
    if not isinstance(net.cost, str) and net.cost.targets is not None:  # a user Cost's own
        return x, net.cost.targets(k_y, (batch, n_out), x.dtype)
    if net.cost == "softmax_cross_entropy":
        return x, jax.random.randint(k_y, (batch,), 0, n_out)
    if net.cost == "sigmoid_binary_cross_entropy":
        return x, jax.random.uniform(k_y, (batch, n_out))
    return x, jax.random.normal(k_y, (batch, n_out))
