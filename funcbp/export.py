"""ONNX export of a trained network, standardisation included, through ``jax2onnx``.

``export_onnx(net, params, path)`` writes one graph from raw inputs ``x`` ``[B, n_in]``
(``B``: any batch size) to the network's output: ``(x - mean) / std`` first when a
``standardizer`` is given (``funcbp.load_run`` has the run's), then every layer, then,
with ``output="probabilities"``, the softmax (``softmax_cross_entropy``) or sigmoid
(``sigmoid_binary_cross_entropy``) of the logits. The graph computes in float32 (the
parameters are cast). ``jax2onnx`` and ``onnxruntime`` are the optional extra ``onnx``
(``pip install 'funcbp[onnx]'``); nothing else in funcbp imports them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from funcbp import activations, losses
from funcbp._jax import atomic
from funcbp.backprop import forward
from funcbp.data import Standardizer
from funcbp.mlp import MLP
from funcbp.predict import PROBABILITIES

Params = list[dict[str, jax.Array]]
OUTPUTS = ("logits", "probabilities")


def export_onnx(
    net: MLP,
    params: Params,
    path: str | Path,
    *,
    standardizer: Standardizer | None = None,
    output: str = "logits",
) -> Path:
    """Writes the ONNX graph of ``net`` at ``params`` to ``path`` (whole: a failed export
    leaves no file) and returns ``path``.

    Raises:
      ValueError: ``output`` unknown, probabilities of a regression, parameters that do
        not fit ``net``, or a user activation ``jax2onnx`` cannot convert (named).
      ImportError: the ``onnx`` extra is not installed.
    """
    to_onnx = _converter()
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if output == "probabilities" and net.cost not in PROBABILITIES:
        raise ValueError(f"output='probabilities': the cost {losses.name_of(net.cost)!r} is a "
                         "regression's; export its logits (its values)")  # fmt: skip
    net.check_call(params, np.zeros((1, net.sizes[0]), np.float32))
    for piece in net.user_pieces:
        if isinstance(piece, activations.Activation):
            _check_exports(to_onnx, piece)
    weights = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    net = dataclasses.replace(net, compute_dtype=None)  # the graph computes in float32

    def network(x: jax.Array) -> jax.Array:
        if standardizer is not None:
            x = standardizer.transform(x)
        out = forward(net, weights, x).out
        return PROBABILITIES[net.cost](out) if output == "probabilities" else out

    model = to_onnx(network, [("B", net.sizes[0])], model_name="funcbp_mlp")
    path = Path(path)
    atomic.write(path, model.SerializeToString())
    return path


def _check_exports(to_onnx, act: activations.Activation) -> None:
    try:
        to_onnx(act.fn, [("B", 2)])
    except Exception as err:  # jax2onnx raises what its tracing or a missing plugin raises
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(f"activation {act.name!r} cannot be exported to ONNX "
                         f"({type(err).__name__}: {first[:200]})") from None  # fmt: skip


def _converter():
    try:
        from jax2onnx import to_onnx
    except ImportError:
        raise ImportError(
            "ONNX export needs jax2onnx and onnxruntime: pip install 'funcbp[onnx]'"
        ) from None
    return to_onnx
