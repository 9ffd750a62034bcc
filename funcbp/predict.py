"""A trained run as a predictor: its network, parameters and training-split standardisation.

``load_run(run_dir)`` reads what ``funcbp train`` left: a checkpoint's parameters
(by default those the run's summary reports: the latest checkpoint's, or its best
epoch's when early stopping stopped the run; ``which="latest"`` or ``"best"``, the
saved checkpoint with the lowest monitored loss) and ``standardizer.json``, the
per-feature mean and std of the training split. ``Predictor.predict(x)`` standardises
raw inputs ``x`` ``[n, n_features]`` as training did, then:

    softmax_cross_entropy             the class [n] (argmax); predict_proba [n, n_classes]
    sigmoid_binary_cross_entropy      with one output: the class [n] (z > 0) and
                                      predict_proba [n, 2] = (1 - p, p); with k outputs:
                                      each label [n, k] and its probability [n, k]
    any other cost                    the network's output [n, n_out] (regression)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from funcbp import checkpoint, losses, rules
from funcbp.activations import Activation
from funcbp.backprop import forward
from funcbp.data import Dataset, Standardizer, check_fits
from funcbp.errors import CheckpointError, DataError
from funcbp.losses import Cost
from funcbp.mlp import MLP
from funcbp.train import evaluate

Params = list[dict[str, jax.Array]]
STANDARDIZER = "standardizer.json"  # in the run directory, as funcbp train writes it


class Predictor(NamedTuple):
    """A network with its parameters and the standardisation its inputs need."""

    net: MLP
    params: Params
    standardizer: Standardizer | None  # None: the run trained on raw inputs

    @property
    def classes(self) -> int | None:
        """How many classes it tells apart (``None``: a regression)."""
        if self.net.cost == "softmax_cross_entropy":
            return self.net.sizes[-1]
        if self.net.cost == "sigmoid_binary_cross_entropy":
            return 2
        return None

    def outputs(self, x) -> np.ndarray:
        """The network's output ``[n, n_out]`` (logits for the classification costs)."""
        return self._run(x, "logits")

    def predict(self, x) -> np.ndarray:
        """Classes (or labels, or values: see the module's table) for raw inputs ``x``."""
        if self.net.cost == "softmax_cross_entropy":
            return self._run(x, "class")
        if self.net.cost == "sigmoid_binary_cross_entropy":
            labels = self._run(x, "labels")
            return labels[:, 0] if labels.shape[1] == 1 else labels
        return self._run(x, "logits")

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities for raw inputs ``x``; a regression has none (``ValueError``)."""
        if self.net.cost not in PROBABILITIES:
            raise ValueError(
                f"predict_proba: the network's cost {losses.name_of(self.net.cost)!r} is "
                "a regression's; it has no class probabilities (use predict)"
            )
        p = self._run(x, "probabilities")
        return np.concatenate([1 - p, p], axis=1) if p.shape[1] == 1 else p

    def _run(self, x, then: str) -> np.ndarray:
        x = self._inputs(x)
        out = np.asarray(_program(self.net, self.params, self.standardizer, x, then))
        floating = np.issubdtype(out.dtype, np.floating) or out.dtype.kind == "V"
        return out.astype(np.float32) if floating and out.dtype.itemsize < 4 else out

    def evaluate(self, x, y, name: str = "data") -> dict[str, float]:
        """``{"loss": ..., "accuracy": ...}`` (accuracy for classification) on raw ``x`` and
        labels ``y`` (class labels ``[n]``, or targets as the cost takes them); ``name``
        names the data in messages.

        Raises:
          DataError: ``y`` does not fit (a label out of range, a wrong shape).
        """
        y = np.asarray(y)
        classes = self.classes if y.ndim == 1 else None
        part = Dataset(self._inputs(x), y, classes, name)  # checks the labels
        if self.net.cost != "sigmoid_binary_cross_entropy" or y.ndim == 2:
            check_fits(part, self.net)  # targets as wide as the output
        if self.standardizer is not None:
            part = self.standardizer.apply(part)
        x, y = part.x, part.y
        if self.net.cost == "sigmoid_binary_cross_entropy" and y.ndim == 1:
            y = y[:, None].astype(np.float32)  # two classes through one logit
        if y.ndim == 2:
            y = y.astype(self._dtype)
        metrics = evaluate(self.net, self.params, jnp.asarray(x, self._dtype), jnp.asarray(y))
        return {name: float(value) for name, value in metrics.items()}

    @property
    def _dtype(self):
        return self.params[0]["w"].dtype

    def _inputs(self, x) -> np.ndarray:
        """``x`` as float32, after its shape is checked (``DataError`` naming it)."""
        x = np.asarray(x)
        n_in = self.net.sizes[0]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise DataError(f"inputs have shape {list(x.shape)}; the network takes [n, {n_in}]")
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DataError("inputs must be finite numbers")
        return x.astype(np.float32, copy=False)


# The class probabilities of the classification costs' logits.
PROBABILITIES = {"softmax_cross_entropy": lambda z: jax.nn.softmax(z, axis=-1),
                 "sigmoid_binary_cross_entropy": jax.nn.sigmoid}  # fmt: skip


@functools.partial(jax.jit, static_argnums=(0, 4))
def _program(
    net: MLP, params: Params, stats: Standardizer | None, x: jax.Array, then: str
) -> jax.Array:
    """Standardise (with ``stats``, a pytree), run the network, then the ``then`` of its
    output: one compiled program per network, input shape and ``then``."""
    if stats is not None:
        x = stats.transform(x)
    out = forward(net, params, x.astype(params[0]["w"].dtype)).out
    if then == "class":
        return jnp.argmax(out, axis=1)
    if then == "labels":
        return (out > 0).astype(jnp.int32)
    if then == "probabilities":
        return PROBABILITIES[net.cost](out)
    return out


def load_run(
    run_dir: str | Path, which: str | None = None, pieces: Sequence[Activation | Cost] = ()
) -> Predictor:
    """The predictor a ``funcbp train`` run directory holds.

    Args:
      run_dir: the run directory.
      which: ``"latest"`` or ``"best"`` checkpoint; default: the parameters the run's
        summary reports (the latest, or the best epoch's when early stopping stopped it).
      pieces: the user activations and costs its network names.

    Raises:
      CheckpointError: no run or no checkpoint there, or an unreadable one; DataError: a
        damaged ``standardizer.json``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "checkpoints").is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory with checkpoints")
    config = _meta(checkpoint.find(run_dir, "latest")).get("config", {})
    engine = config.get("train", {}).get("engine", "backprop")
    rule = rules.make(engine, **config.get("rule", {})) if engine in rules.NAMES else None
    saved = checkpoint.load_checkpoint(run_dir, which=which or "latest", pieces=pieces,
                                       rule=rule)  # fmt: skip
    params = saved.state.params
    if which is None and saved.progress.best_params is not None and saved.progress.stopped:
        params = saved.progress.best_params  # as the run's summary restored them
    path = run_dir / STANDARDIZER
    stats = Standardizer.from_json(path.read_text(), str(path)) if path.is_file() else None
    if config.get("data", {}).get("standardize", True) and stats is None:
        raise CheckpointError(f"{run_dir} trained on standardised data but has no {STANDARDIZER}")
    return Predictor(saved.net, params, stats)


def _meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path.with_suffix('.json')} is not readable ({err})") from None
