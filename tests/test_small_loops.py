"""funcbp lets XLA compile small while loops (a tiny network's fused epochs) as one kernel."""

import os
import subprocess
import sys

import pytest

from funcbp import small_loops

SCRIPT = r"""
import numpy as np, jax, optax, funcbp
from funcbp.train import _compile_block, init_progress
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
y = np.array([[0], [1], [1], [0]], np.float32)
net = funcbp.MLP((2, 4, 1), activation="sigmoid", cost="sigmoid_binary_cross_entropy")
opt = optax.sgd(1.0)
block = _compile_block(net, opt, "backprop", None, 100, (), None, None, None, 4)
state = funcbp.init_state(net, opt, jax.random.key(0))
hlo = block.lower(state, init_progress(state), np.int32(100), x, y, {}).compile().as_text()
print("xla_cpu_small_call" in hlo)
"""


@pytest.mark.parametrize(("size", "one_kernel"), [(None, True), ("0", False)])
def test_xor_epochs_compile_to_one_kernel_unless_turned_off(size, one_kernel):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", small_loops.ENV)}
    if size is not None:
        env[small_loops.ENV] = size
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(one_kernel)]


def test_the_flag_is_added_once_and_a_users_own_choice_stands(monkeypatch):
    monkeypatch.delenv(small_loops.ENV, raising=False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    small_loops.raise_threshold()
    expected = (
        "--xla_force_host_platform_device_count=2 "
        "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=16384"
    )
    assert os.environ["XLA_FLAGS"] == expected
    small_loops.raise_threshold()  # already there: the user's (or our) choice stands
    assert os.environ["XLA_FLAGS"] == expected


def test_a_size_that_is_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv(small_loops.ENV, "lots")
    with pytest.raises(ValueError, match=r"FUNCBP_SMALL_LOOP_BYTES must be a number of bytes"):
        small_loops.raise_threshold()
