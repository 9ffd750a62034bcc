"""Each hand-derived activation derivative equals jax.grad of the activation, kinks included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcbp import activations

# A grid over the interesting range, the kink at 0 exactly, and saturated tails.
Z = jnp.concatenate([jnp.linspace(-8.0, 8.0, 401), jnp.array([0.0, -40.0, 40.0, 1e-12, -1e-12])])


@pytest.mark.parametrize("name", activations.NAMES)
def test_derivative_matches_autodiff_in_float64(name):
    act = activations.get(name)
    z = Z.astype(jnp.float64)
    want = jax.vmap(jax.grad(act.fn))(z)
    got = act.grad(z, act.fn(z))
    # Both evaluate the same closed form in float64; the reassociation between
    # them costs a few ulps, far below 1e-13 absolute for derivatives of order 1.
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", activations.NAMES)
def test_derivative_keeps_dtype_and_shape(name):
    act = activations.get(name)
    z = jnp.ones((3, 4), jnp.float32)
    d = act.grad(z, act.fn(z))
    assert d.shape == (3, 4) and d.dtype == jnp.float32


def test_kinks_follow_jax_nn():
    zero = jnp.zeros(1)
    for name, slope in {"relu": 0.0, "leaky_relu": 1.0, "elu": 1.0}.items():
        act = activations.get(name)
        assert float(act.grad(zero, act.fn(zero))[0]) == slope, name


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown activation 'rleu'.*relu.*gelu_tanh"):
        activations.get("rleu")
