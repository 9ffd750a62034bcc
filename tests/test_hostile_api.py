"""Hostile calls to the library API: refused before anything is compiled, naming the cause."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcbp
from funcbp import sharding
from funcbp.errors import ConfigError

from ._xla_compiles import XlaCompiles, assert_refused_before_compiling

NET = funcbp.MLP((4, 8, 3), cost="softmax_cross_entropy")
X = np.linspace(0, 1, 80, dtype=np.float32).reshape(20, 4)
Y = np.arange(20) % 3
KEY = jax.random.key(0)  # made here: a key made in a test compiles its seeding


def _fit(net=NET, **changes):
    run = {"optimizer": optax.adam(1e-3), "train": (X, Y), "epochs": 2, "batch_size": 4, **changes}
    return funcbp.fit(net, run.pop("optimizer"), run.pop("train"), **run)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: _fit(epochs=2**40), r"epochs must be an integer in \[1, 2\*\*31 - 1\]"),
        (lambda: funcbp.train.FitOptions(epochs=3_000_000_000, batch_size=8), r"epochs must be"),
        (lambda: _fit(patience=2**31), r"patience must be an integer in \[1, 2\*\*31 - 1\]"),
        (lambda: _fit(epochs_per_call=2**31), r"epochs_per_call must be an integer in \[1, 2"),
        (lambda: _fit(diagnostics_every=2**35), r"diagnostics_every must be an integer in \["),
        (lambda: funcbp.train.FitOptions(epochs=1, batch_size=2**31), r"batch_size must be an"),
        (lambda: _fit(epochs=2**30, batch_size=2), r"epochs: 1073741824 epochs of 10 steps make"),
    ],
)
def test_every_count_is_bounded_by_int32_before_compiling(call, message):
    assert_refused_before_compiling(call, ValueError, message)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: funcbp.init_state(funcbp.MLP((64, 2_000_000_000, 10)), optax.adam(1e-3), KEY),
            r"init_state: the network \(64, 2000000000, 10\) needs about 1.6 TiB \(parameters "
            r"558.8 GiB, optimizer state 1.1 TiB\), more than the .* it may use \(80% of the .* "
            r"available on",
        ),
        (
            lambda: _fit(
                net=funcbp.MLP((4, 1_000_000, 3), cost="softmax_cross_entropy"),
                train=(np.zeros((100_000, 4)), np.arange(100_000) % 3),
                batch_size=100_000,
            ),
            r"fit_blocks: the run needs about .* activations and deltas .* more than the .* it may "
            r"use .* a smaller batch_size",
        ),
    ],
)
def test_work_that_cannot_fit_in_memory_is_refused_with_the_estimate(call, message):
    assert_refused_before_compiling(call, ConfigError, message)


def test_the_memory_estimate_compiles_nothing_more():
    _fit()
    compiles = XlaCompiles()
    with compiles:
        _fit()
    assert compiles.count == 0


def _int_params():
    return jax.tree.map(lambda a: a.astype(jnp.int32), NET.init(jax.random.key(0)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: NET.backprop(_int_params(), X, Y), r"params\[0\]\['b'\] has dtype int32; param"),
        (lambda: NET.autodiff(_int_params(), X, Y), r"parameters must be floating point"),
        (
            lambda: _fit(
                state=funcbp.init_state(NET, optax.adam(1e-3), jax.random.key(0))._replace(
                    params=_int_params()
                )
            ),
            r"has dtype int32; parameters must be floating point",
        ),
        (
            lambda: funcbp.init_state(NET, optax.adam(1e-3), jax.random.key(0), jnp.int32),
            r"dtype must be a floating type, got int32",
        ),
        (lambda: _fit(dtype=jnp.bool_), r"dtype must be a floating type, got bool"),
        (lambda: _fit(devices=[0]), r"devices must be jax.Device objects, .* 0 is not one"),
        (lambda: sharding.data_mesh(["gpu:1"]), r"devices must be jax.Device .* 'gpu:1' is not"),
    ],
)
def test_nonsensical_parameters_and_devices_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"optimizer": "adam"},
            r"optimizer must be an optax GradientTransformation, such as "
            r"funcbp.optim.make\('adam', 1e-3\) .* got 'adam'",
        ),
        ({"optimizer": None}, r"optimizer must be an optax GradientTransformation.* got None"),
        (
            {"train": None},
            r"train must be a funcbp.data.Dataset or an \(x, y\) pair of arrays, "
            r"got NoneType",
        ),
        ({"eval": {"test": 3}}, r"eval\['test'\] must be a funcbp.data.Dataset or an \(x, y\)"),
        (
            {"state": funcbp.init_state(NET, optax.sgd(0.1), jax.random.key(0))},
            r"state: its optimizer state \(EmptyState\) is not what the optimizer makes "
            r"\(ScaleByAdamState, EmptyState\); it seems to come from another optimizer",
        ),
        ({"devices": ["cpu:7"]}, r"devices must be jax.Device objects, .* 'cpu:7' is not one"),
    ],
)
def test_messages_name_the_real_cause(changes, message):
    with pytest.raises(ValueError, match=message):
        _fit(**changes)
