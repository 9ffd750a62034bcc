"""funcbp: MLPs in JAX as pure functions, with a hand-derived backward pass beside jax.grad."""

from funcbp import activations, backprop, initializers, losses, optim, testing
from funcbp.backprop import BackpropResult, ForwardCache
from funcbp.gradcheck import GradientReport, check_grad, check_gradients, check_hvp, check_vjp
from funcbp.mlp import MLP

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "BackpropResult",
    "ForwardCache",
    "GradientReport",
    "activations",
    "backprop",
    "check_grad",
    "check_gradients",
    "check_hvp",
    "check_vjp",
    "initializers",
    "losses",
    "optim",
    "testing",
]
