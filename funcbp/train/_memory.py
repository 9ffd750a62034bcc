"""What training needs in memory, estimated from shapes before anything is allocated.

A network or run that cannot fit is refused up front (``ConfigError``, with the
estimate and what is available) instead of hanging in an allocation or dying
in one halfway through. The bound is ``USABLE`` of the memory available when
the check runs: each device's free memory where JAX reports it (GPUs, TPUs),
else the host's (CPU devices share it), leaving the rest for XLA's temporaries
and the process itself. Only shapes are traced (``jax.eval_shape``): nothing
is compiled or allocated. ``funcbp._jax.memory.refuse_unless_fits`` does the refusing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from funcbp import rules as _rules
from funcbp.mlp import MLP


def _param_shapes(net: MLP, dtype) -> list[dict[str, jax.ShapeDtypeStruct]]:
    return [
        {
            "w": jax.ShapeDtypeStruct((n_in, n_out), dtype),
            "b": jax.ShapeDtypeStruct((n_out,), dtype),
        }
        for n_in, n_out, _ in net.init_rules
    ]


def opt_state_shapes(optimizer, net: MLP, dtype) -> Any:
    """The optimizer state ``optimizer.init`` makes for ``net``'s parameters, as shapes."""
    return jax.eval_shape(optimizer.init, _param_shapes(net, dtype))


def rule_state_shapes(rule: _rules.Rule, net: MLP, dtype) -> Any:
    """The state ``rule.init`` makes for ``net``'s parameters, as shapes (``()`` for a rule
    without state, traced not at all); nothing is compiled. Raises what ``rule.init``
    raises for a network the rule cannot train (``ValueError``)."""
    if not _rules.has_state(rule):
        return ()
    return jax.eval_shape(lambda p: rule.init(jax.random.key(0), net, p), _param_shapes(net, dtype))


def tree_bytes(tree: Any) -> int:
    """Bytes of the arrays (or ``ShapeDtypeStruct``\\ s) in ``tree``; PRNG keys count 8."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        dtype = leaf.dtype
        itemsize = 8 if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) else dtype.itemsize
        total += math.prod(leaf.shape) * itemsize
    return total


def training_bytes(
    net: MLP,
    optimizer,
    dtype,
    *,
    data: Sequence[tuple[Any, Any]] = (),
    batch: int | None = None,
    patience: int | None = None,
    devices: int = 1,
    rule: _rules.Rule | None = None,
) -> dict[str, int]:
    """Bytes training ``net`` needs on each of ``devices``, by part.

    Args:
      dtype: the parameters' dtype.
      data: ``(x [n, n_in], y [n] or [n, n_out])`` pairs (or ``(x, y, sample_weight
        [n])`` triples) placed on the devices (split by rows), the training set
        first; none: the parameters and optimizer state only.
      batch: rows per step (``None``: the training set's ``n``).
      patience: early stopping keeps a copy of the best parameters.
      rule: a learning rule (``funcbp.rules``) whose state (``rule_state_shapes``) counts too.

    Returns:
      ``{"parameters", "optimizer state"}``, ``"rule state"`` for a rule with state,
      and, with ``data``, ``"gradients"``,
      ``"data"`` (inputs in ``dtype``), ``"activations and deltas"`` (``z``, ``a`` and
      ``delta`` ``[batch / devices, n_l]`` per layer, or an evaluation set's forward
      pass if larger) and, with ``patience``, ``"best parameters"``.
    """
    itemsize = np.dtype(dtype).itemsize
    params = net.num_params * itemsize
    needs = {"parameters": params,
             "optimizer state": tree_bytes(opt_state_shapes(optimizer, net, dtype))}  # fmt: skip
    if rule is not None and _rules.has_state(rule):
        needs["rule state"] = tree_bytes(rule_state_shapes(rule, net, dtype))
    if not data:
        return needs
    widths = sum(net.sizes[1:])

    def rows(x) -> int:
        return -(-len(x) // devices)  # split over the devices, padded to divide

    placed = 0
    for x, y, *weights in data:
        y_row = y.dtype.itemsize if y.ndim == 1 else math.prod(y.shape[1:]) * itemsize
        w_row = itemsize if weights and weights[0] is not None else 0
        placed += rows(x) * (math.prod(x.shape[1:]) * itemsize + y_row + w_row)
    n_train = len(data[0][0])
    step_rows = -(-(n_train if batch is None else batch) // devices)
    eval_rows = max((rows(pair[0]) for pair in data[1:]), default=0)
    activations = max(3 * step_rows, 2 * eval_rows) * widths * itemsize
    needs.update({"gradients": params, "data": placed, "activations and deltas": activations})
    if patience is not None:
        needs["best parameters"] = params
    return needs
