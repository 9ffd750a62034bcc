"""funcbp: MLPs in JAX as pure functions, with a hand-derived backward pass beside jax.grad.

The public API is what this module re-exports, and the public modules below;
``funcbp._jax`` (process plumbing) and ``funcbp.cli`` (the command line) are
not. Importing funcbp changes no process state: no environment variable, no
umask, no JAX option (``use_fast_cpu_compile`` is the call that sets XLA options).
"""

from funcbp import (
    activations,
    backprop,
    checkpoint,
    curvature,
    data,
    diagnostics,
    errors,
    export,
    gradcheck,
    initializers,
    losses,
    optim,
    predict,
    rules,
    sharding,
    testing,
    train,
)
from funcbp._jax.caches import clear_caches
from funcbp._jax.compilation_cache import enable_compilation_cache
from funcbp._jax.xla_cpu_flags import use_fast_cpu_compile
from funcbp.activations import Activation
from funcbp.backprop import BACKPROP, BackpropResult, BackwardRule, ForwardCache
from funcbp.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from funcbp.data import DataWarning
from funcbp.errors import CheckpointError, ConfigError, DataError
from funcbp.export import export_onnx
from funcbp.gradcheck import (
    CheckOptions,
    GradientReport,
    check_activation,
    check_cost,
    check_grad,
    check_gradients,
    check_hvp,
    check_vjp,
)
from funcbp.losses import Cost
from funcbp.mlp import MLP
from funcbp.predict import Predictor, load_run
from funcbp.rules import LearningRule
from funcbp.train import (
    FitOptions,
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
    "BACKPROP",
    "MLP",
    "Activation",
    "BackpropResult",
    "BackwardRule",
    "CheckOptions",
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "Cost",
    "DataError",
    "DataWarning",
    "FitOptions",
    "ForwardCache",
    "GradientReport",
    "LearningRule",
    "Predictor",
    "TrainState",
    "TrainingDiverged",
    "activations",
    "backprop",
    "check_activation",
    "check_cost",
    "check_grad",
    "check_gradients",
    "check_hvp",
    "check_vjp",
    "checkpoint",
    "clear_caches",
    "curvature",
    "data",
    "diagnostics",
    "enable_compilation_cache",
    "errors",
    "evaluate",
    "export",
    "export_onnx",
    "fit",
    "fit_blocks",
    "gradcheck",
    "init_state",
    "initializers",
    "load_checkpoint",
    "load_run",
    "losses",
    "make_epoch",
    "make_train_step",
    "optim",
    "predict",
    "rules",
    "save_checkpoint",
    "sharding",
    "testing",
    "train",
    "use_fast_cpu_compile",
]
