"""Data parallelism: a run over 4 (virtual CPU) devices matches the one-device run.

The device count is fixed when JAX starts, so the comparison runs in a fresh
process with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import funcbp
from funcbp import optim, sharding

SCRIPT = r"""
import json, re, sys, warnings
warnings.simplefilter("error")  # as pytest runs the tests
import jax, numpy as np
import funcbp
from funcbp import data, optim

assert jax.device_count() == 4, jax.devices()
parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2, seed=0))
net = funcbp.MLP((64, 32, 10), activation="relu", cost="softmax_cross_entropy")
out = {}
for engine in ("backprop", "autodiff"):
    for devices in (jax.devices(), jax.devices()[:1]):
        # int64 labels, as NumPy makes them: placed as int32 without a warning.
        train = (parts.train.x, parts.train.y.astype(np.int64))
        state, history = funcbp.fit(
            net, optim.make("adam", 1e-3), train, epochs=3, batch_size=64, engine=engine,
            eval={"test": parts.test}, key=jax.random.key(0), devices=devices,
        )
        w = state.params[0]["w"]
        out[f"{engine}/{len(devices)}"] = {
            "history": history, "w": np.asarray(w).tolist(), "on": len(w.sharding.device_set),
        }
# The 4-device program: each device holds a quarter of the training rows (1438 padded
# to 1440), gathers its part of each batch from them, and all-reduces the gradient;
# it holds and evaluates a quarter of the test rows too (359 padded to 360).
lowered = funcbp.train.lower_block(net, optim.make("adam", 1e-3), parts.train, epochs=3,
                                   batch_size=64, epochs_per_call=3, eval={"test": parts.test})
hlo = lowered.compile().as_text()
mesh, n = funcbp.sharding.data_mesh(), len(parts.train)
xs, ys = funcbp.sharding.split_rows((parts.train.x, parts.train.y), mesh)  # as fit places them
test = funcbp.sharding.split_rows((parts.test.x, parts.test.y), mesh)
out["program"] = {"all_reduce": "all-reduce(" in hlo,
                  "all_gather_rows": bool(re.search(r"\[(1440|360),64\]\S* all-gather\(", hlo)),
                  "rows_per_device": xs.addressable_shards[0].data.shape[0], "n": n,
                  "test_rows_per_device": test[0].addressable_shards[0].data.shape[0],
                  "evaluated_per_device": bool(re.search(r"f32\[90,64\]", hlo))}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_four_devices_give_the_one_device_history_for_both_engines():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["program"] == {"all_reduce": True, "all_gather_rows": False,
                              "rows_per_device": 360, "n": 1438, "test_rows_per_device": 90,
                              "evaluated_per_device": True}  # fmt: skip
    for engine in funcbp.train.ENGINES:
        four, one = out[f"{engine}/4"], out[f"{engine}/1"]
        assert (four["on"], one["on"]) == (4, 1)
        # float32: the 4 devices sum their batch quarters, then all-reduce; the order of
        # the additions differs from one device's, so losses agree to rounding (~1e-7
        # relative per step), which three epochs of Adam amplify to well under 1e-4.
        for name, values in one["history"].items():
            assert four["history"][name] == pytest.approx(values, rel=1e-4), name
        np.testing.assert_allclose(four["w"], one["w"], rtol=1e-3, atol=1e-5)


def test_a_batch_that_does_not_divide_over_the_devices_is_refused(monkeypatch):
    monkeypatch.setattr(sharding, "data_mesh", lambda devices=None: type("M", (), {"size": 4})())
    net = funcbp.MLP((3, 4, 2), cost="softmax_cross_entropy")
    x, y = [[0.0, 1.0, 2.0]] * 12, [0, 1] * 6
    with pytest.raises(ValueError, match=r"batch_size 6 does not divide over 4 devices"):
        funcbp.fit(net, optim.make("sgd", 0.1), (x, y), epochs=1, batch_size=6)
    with pytest.raises(ValueError, match=r"full batch 10 does not divide over 4 devices"):
        funcbp.fit(net, optim.make("sgd", 0.1), (x[:10], y[:10]), epochs=1, batch_size=None)


@pytest.mark.parametrize("devices", [[], "twice"])
def test_no_devices_or_one_twice_is_refused(devices):
    devices = [jax.devices()[0]] * 2 if devices == "twice" else devices
    with pytest.raises(ValueError, match=r"devices must be distinct devices, at least one"):
        sharding.data_mesh(devices)


def test_rows_from_processes_refuses_arrays_of_different_lengths():
    with pytest.raises(ValueError, match=r"arrays of different lengths \[3, 4\]"):
        sharding.rows_from_processes((np.zeros((4, 2)), np.zeros(3)))


def test_split_rows_on_one_device_leave_the_data_whole():
    x = np.arange(10.0).reshape(5, 2)
    placed = sharding.split_rows(x, None)
    np.testing.assert_array_equal(placed, x)
    assert not sharding.is_split_rows(placed) and not sharding.is_split_rows(())
