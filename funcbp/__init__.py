"""funcbp: MLPs in JAX as pure functions, with a hand-derived backward pass beside jax.grad."""

from funcbp import activations, backprop, initializers, losses
from funcbp.backprop import BackpropResult, ForwardCache
from funcbp.mlp import MLP

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "BackpropResult",
    "ForwardCache",
    "activations",
    "backprop",
    "initializers",
    "losses",
]
