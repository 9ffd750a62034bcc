"""funcbp.use_fast_cpu_compile: tiny loops as one kernel, no LLVM loop unrolling."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from funcbp._jax import xla_cpu_flags

XOR_KERNEL = r"""
import numpy as np, optax, funcbp
funcbp.use_fast_cpu_compile()
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
y = np.array([[0], [1], [1], [0]], np.float32)
net = funcbp.MLP((2, 4, 1), activation="sigmoid", cost="sigmoid_binary_cross_entropy")
lowered = funcbp.train.lower_block(net, optax.sgd(1.0), (x, y), epochs=100, batch_size=None,
                                   epochs_per_call=100)
hlo = lowered.compile().as_text()
print("xla_cpu_small_call" in hlo)
"""

IRIS_HISTORY = r"""
import json, optax, funcbp
funcbp.use_fast_cpu_compile()
parts, _ = funcbp.data.standardize(funcbp.data.split(funcbp.data.load("iris"), test=0.2, seed=0))
net = funcbp.MLP((4, 16, 3), activation="tanh", cost="softmax_cross_entropy")
_, history = funcbp.fit(net, optax.adam(1e-2), parts.train, epochs=20, batch_size=16,
                        eval={"test": parts.test})
print(json.dumps(history))
"""


def _run(script: str, **env_vars: str) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XLA_FLAGS", xla_cpu_flags.SMALL_LOOP_ENV, xla_cpu_flags.UNROLLING_ENV)
    }
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env | env_vars, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(("size", "one_kernel"), [(None, True), ("0", False)])
def test_xor_epochs_compile_to_one_kernel_unless_turned_off(size, one_kernel):
    env = {} if size is None else {xla_cpu_flags.SMALL_LOOP_ENV: size}
    assert _run(XOR_KERNEL, **env).split() == [str(one_kernel)]


def test_training_without_loop_unrolling_follows_the_same_history():
    # Unrolling changes the order in which LLVM sums a vectorised reduction, nothing
    # else: float32 rounding apart (~1e-7 a step over 20 epochs), the histories agree.
    plain = json.loads(_run(IRIS_HISTORY))
    unrolled = json.loads(_run(IRIS_HISTORY, **{xla_cpu_flags.UNROLLING_ENV: "1"}))
    assert plain.keys() == unrolled.keys()
    for name in plain:
        np.testing.assert_allclose(plain[name], unrolled[name], rtol=1e-5, atol=1e-6)


@pytest.fixture
def before_the_backend(monkeypatch):
    """This test process started JAX's backend long ago; the flags' own logic is what is
    tested here (a fresh process checks the refusal: tests/test_package.py)."""
    monkeypatch.setattr(xla_cpu_flags, "_backend_started", lambda: False)


def test_the_flags_are_added_once_and_a_users_own_choice_stands(monkeypatch, before_the_backend):
    monkeypatch.delenv(xla_cpu_flags.SMALL_LOOP_ENV, raising=False)
    monkeypatch.delenv(xla_cpu_flags.UNROLLING_ENV, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert xla_cpu_flags.use_fast_cpu_compile()
    expected = (
        "--xla_force_host_platform_device_count=2 --xla_backend_extra_options="
        "xla_cpu_small_while_loop_byte_threshold=16384,xla_cpu_disable_loop_unrolling=true"
    )
    assert os.environ["XLA_FLAGS"] == expected
    assert not xla_cpu_flags.use_fast_cpu_compile()  # there: the user's (or our) choice stands
    assert os.environ["XLA_FLAGS"] == expected


@pytest.mark.parametrize(
    ("size", "unrolling", "options"),
    [
        ("0", "0", {"xla_cpu_disable_loop_unrolling": "true"}),
        ("4096", "1", {"xla_cpu_small_while_loop_byte_threshold": "4096"}),
        ("0", "1", {}),
    ],
)
def test_each_option_can_be_turned_off(monkeypatch, before_the_backend, size, unrolling, options):
    monkeypatch.setenv(xla_cpu_flags.SMALL_LOOP_ENV, size)
    monkeypatch.setenv(xla_cpu_flags.UNROLLING_ENV, unrolling)
    assert xla_cpu_flags.backend_options() == options
    monkeypatch.setenv("XLA_FLAGS", "")
    assert xla_cpu_flags.use_fast_cpu_compile() == bool(options)
    assert os.environ["XLA_FLAGS"] == (
        "--xla_backend_extra_options=" + ",".join(f"{k}={v}" for k, v in options.items())
        if options
        else ""
    )


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        (xla_cpu_flags.SMALL_LOOP_ENV, "lots", r"FUNCBP_SMALL_LOOP_BYTES must be a number"),
        (xla_cpu_flags.UNROLLING_ENV, "yes", r"FUNCBP_LOOP_UNROLLING must be 0 or 1"),
    ],
)
def test_a_value_that_does_not_parse_is_refused(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=message):
        xla_cpu_flags.use_fast_cpu_compile()
