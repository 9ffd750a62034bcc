"""Mixed precision: layers in bfloat16/float16 on float32 master parameters, both engines."""

import jax
import jax.numpy as jnp
import pytest

import funcbp
from funcbp import data, optim

from ._compare import assert_trees_close

# Normwise agreement of the engines, and with the float32 gradient: a few units of
# the compute dtype's rounding (bfloat16 eps 7.8e-3, float16 eps 9.8e-4), since
# each layer rounds its z and a once and the engines round their products apart.
TOLERANCE = {"bfloat16": 5e-2, "float16": 5e-3}


@pytest.mark.parametrize("compute_dtype", ["bfloat16", "float16"])
def test_engines_agree_and_gradients_stay_float32(compute_dtype):
    # Smooth units: a ReLU whose z rounds across 0 would switch its whole gradient.
    kw = dict(activation=("tanh", "softplus"), cost="softmax_cross_entropy", l2=1e-3)
    net = funcbp.MLP((5, 16, 16, 3), compute_dtype=compute_dtype, **kw)
    params = funcbp.MLP((5, 16, 16, 3), **kw).init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (32, 5), jnp.float32)
    y = jnp.arange(32) % 3
    loss_bp, grads_bp = jax.jit(net.backprop)(params, x, y)
    loss_ad, grads_ad = jax.jit(net.autodiff)(params, x, y)
    _, grads_f32 = funcbp.MLP((5, 16, 16, 3), **kw).backprop(params, x, y)
    assert loss_bp.dtype == jnp.float32 and net.apply(params, x).dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves((grads_bp, grads_ad)))
    assert_trees_close(grads_bp, grads_ad, TOLERANCE[compute_dtype])
    assert_trees_close(grads_bp, grads_f32, TOLERANCE[compute_dtype])
    assert abs(float(loss_bp - loss_ad)) < TOLERANCE[compute_dtype]


@pytest.mark.slow
@pytest.mark.parametrize("engine", funcbp.train.ENGINES)
def test_bfloat16_compute_trains_digits_within_a_point_of_float32(engine):
    parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2, seed=0))
    accuracy = {}
    for compute_dtype in (None, "bfloat16"):
        net = funcbp.MLP((64, 128, 128, 10), cost="softmax_cross_entropy",
                         compute_dtype=compute_dtype)  # fmt: skip
        state, history = funcbp.fit(net, optim.make("adam", 1e-3), parts.train, epochs=15,
                                    batch_size=64, engine=engine, eval={"test": parts.test},
                                    key=jax.random.key(0))  # fmt: skip
        assert state.params[0]["w"].dtype == jnp.float32  # master parameters
        accuracy[compute_dtype] = history["test_accuracy"][-1]
    assert accuracy["bfloat16"] >= accuracy[None] - 0.01, accuracy


def test_an_unknown_compute_dtype_is_named():
    with pytest.raises(ValueError, match=r"compute_dtype must be one of .*got 'int8'"):
        funcbp.MLP((2, 3), compute_dtype="int8")
