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


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_exact_gelu_derivative_keeps_its_relative_accuracy_in_the_left_tail(dtype):
    # gelu'(z) = Phi(z) + z phi(z) is tiny for z << 0 (4e-22 at z = -10): 1 + erf(z / sqrt 2)
    # would cancel to a few ulps of 1 there; erfc keeps it, as jax.nn.gelu's own Phi does.
    act = activations.get("gelu")
    z = jnp.linspace(-12.0 if dtype == jnp.float64 else -9.0, -3.0, 91, dtype=dtype)
    want = jax.vmap(jax.grad(act.fn))(z)
    # Measured: 1e-13 (float64) and 2e-5 (float32); with erf, 1e-2 and 1e-1.
    np.testing.assert_allclose(
        act.grad(z, act.fn(z)), want, rtol=1e-11 if dtype == jnp.float64 else 1e-4
    )


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
