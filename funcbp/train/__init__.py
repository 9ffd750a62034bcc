"""Training in two layers: pure, jit-able building blocks and the host-side driver.

* ``funcbp.train._step``: ``TrainState``, ``init_state``, ``make_train_step`` (gradient
  by an engine, ``funcbp.train._engine``: ``"backprop"``, ``"autodiff"`` or a learning
  rule of ``funcbp.rules``, then the optax update), ``make_epoch`` (an on-device
  shuffle, then ``lax.scan`` over the mini-batches), ``evaluate`` and the ``Progress``
  carried on the device; a research script can ``jax.jit`` any of them itself.
* ``funcbp.train._fit``: ``fit`` and ``fit_blocks``, which check and place the data
  (``funcbp.train._data``: data sets and sample weights) and run
  ``funcbp.train._block``'s compiled block of epochs (evaluation and early stopping on
  the device, one host synchronisation per block), configured by one ``FitOptions``
  (``funcbp.train._options``).
"""

from funcbp.train._data import eval_sets_on_devices, inputs_in_dtype, weights_in_dtype
from funcbp.train._engine import ENGINES, rule_of
from funcbp.train._fit import Block, SolverWarning, TrainingDiverged, fit, fit_blocks, lower_block
from funcbp.train._full_batch import check_solver_run
from funcbp.train._memory import rule_state_shapes
from funcbp.train._options import FitOptions
from funcbp.train._step import (
    Progress,
    TrainState,
    evaluate,
    evaluate_sets,
    init_progress,
    init_state,
    make_epoch,
    make_train_step,
)

__all__ = [
    "ENGINES",
    "Block",
    "FitOptions",
    "Progress",
    "SolverWarning",
    "TrainState",
    "TrainingDiverged",
    "check_solver_run",
    "eval_sets_on_devices",
    "evaluate",
    "evaluate_sets",
    "fit",
    "fit_blocks",
    "init_progress",
    "init_state",
    "inputs_in_dtype",
    "lower_block",
    "make_epoch",
    "make_train_step",
    "rule_of",
    "rule_state_shapes",
    "weights_in_dtype",
]
