"""``FitOptions``: how ``fit`` and ``fit_blocks`` train, one frozen, hashable, validated value."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from funcbp import sharding
from funcbp.rules import Rule
from funcbp.train._engine import check_engine
from funcbp.train._step import check_batch_size, check_count


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How ``fit`` and ``fit_blocks`` train; each keyword of theirs overrides one field.

    Hashable, so it (with the network, optimizer and data layout) keys the compiled
    block of epochs: equal options reuse it. Validated when made (``ValueError``).

    Attributes:
      epochs: passes over the training data.
      batch_size: samples per step, or ``None`` for full-batch training.
      engine: ``"backprop"`` (hand-derived), ``"autodiff"`` (``jax.grad``) or a learning
        rule of ``funcbp.rules`` by name (its default options, the rule once made) or
        value: a ``funcbp.BackwardRule`` (the hand-derived pass with its feedback
        matrices) or a ``funcbp.rules.LearningRule``; its state lives in
        ``TrainState.rule_state``. ``funcbp.BACKPROP`` is ``"backprop"``.
      patience: stop after this many epochs without a better monitored loss (the
        first eval set's) and restore the best parameters; ``None``: never.
      dtype: parameter dtype of a fresh state (a ``jnp.dtype`` once made).
      epochs_per_call: epochs compiled into one call; ``None``: ``fit`` runs all of
        them in one (about 50 calls when it has a ``callback``), ``fit_blocks``
        about 50 calls per run.
      diagnostics_every: record ``funcbp.diagnostics``' per-layer statistics every
        this many steps; ``None``: never.
      devices: train data-parallel over these ``jax.Device`` (a tuple once made);
        ``None``: all devices.
    """

    epochs: int
    batch_size: int | None
    engine: str | Rule = "backprop"
    patience: int | None = None
    dtype: Any = jnp.float32
    epochs_per_call: int | None = None
    diagnostics_every: int | None = None
    devices: tuple[jax.Device, ...] | None = None

    def __post_init__(self) -> None:
        counts = {"epochs": self.epochs, "patience": self.patience,
                  "epochs_per_call": self.epochs_per_call,
                  "diagnostics_every": self.diagnostics_every}  # fmt: skip
        for name, value in counts.items():
            if value is None and name != "epochs":
                continue
            self._set(name, check_count(name, value))  # a NumPy integer hashes as Python's
        check_batch_size(self.batch_size)
        if self.batch_size is not None:
            self._set("batch_size", int(self.batch_size))
        self._set("engine", check_engine(self.engine))
        try:
            self._set("dtype", jnp.dtype(self.dtype))
        except TypeError:
            message = f"dtype must be a dtype such as jnp.float32, got {self.dtype!r}"
            raise ValueError(message) from None
        if self.devices is not None:
            self._set("devices", sharding.check_devices(self.devices))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # frozen: normalised once, while being made
