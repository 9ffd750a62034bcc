"""funcbp: MLPs in JAX as pure functions, with a hand-derived backward pass beside jax.grad."""

from funcbp._jax import xla_cpu_flags

xla_cpu_flags.set_flags()  # before JAX's backend starts: see funcbp/xla_cpu_flags.py

from funcbp import (
    activations,
    backprop,
    data,
    diagnostics,
    initializers,
    losses,
    optim,
    sharding,
    testing,
    train,
)
from funcbp._jax.compilation_cache import enable_compilation_cache
from funcbp.backprop import BackpropResult, ForwardCache
from funcbp.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from funcbp.gradcheck import GradientReport, check_grad, check_gradients, check_hvp, check_vjp
from funcbp.mlp import MLP
from funcbp.train import (
    TrainingDiverged,
    TrainState,
    evaluate,
    fit,
    fit_blocks,
    init_state,
    make_epoch,
    make_train_step,
)

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "BackpropResult",
    "Checkpoint",
    "CheckpointError",
    "ForwardCache",
    "GradientReport",
    "TrainState",
    "TrainingDiverged",
    "activations",
    "backprop",
    "check_grad",
    "check_gradients",
    "check_hvp",
    "check_vjp",
    "data",
    "diagnostics",
    "enable_compilation_cache",
    "evaluate",
    "fit",
    "fit_blocks",
    "init_state",
    "initializers",
    "load_checkpoint",
    "losses",
    "make_epoch",
    "make_train_step",
    "optim",
    "save_checkpoint",
    "sharding",
    "testing",
    "train",
]
