"""funcbp: MLPs in JAX as pure functions, with a hand-derived backward pass beside jax.grad."""

from funcbp import activations, backprop, data, initializers, losses, optim, testing, train
from funcbp.backprop import BackpropResult, ForwardCache
from funcbp.gradcheck import GradientReport, check_grad, check_gradients, check_hvp, check_vjp
from funcbp.mlp import MLP
from funcbp.train import TrainState, evaluate, fit, init_state, make_epoch, make_train_step

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "BackpropResult",
    "ForwardCache",
    "GradientReport",
    "TrainState",
    "activations",
    "backprop",
    "check_grad",
    "check_gradients",
    "check_hvp",
    "check_vjp",
    "data",
    "evaluate",
    "fit",
    "init_state",
    "initializers",
    "losses",
    "make_epoch",
    "make_train_step",
    "optim",
    "testing",
    "train",
]
