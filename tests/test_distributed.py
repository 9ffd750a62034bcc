"""Two processes on 127.0.0.1 with jax.distributed train as one data-parallel run."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from funcbp import MLP, data, fit, optim

WORKER = Path(__file__).with_name("_distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_end_with_identical_parameters_equal_to_one_process():
    port = str(_free_port())
    command = [sys.executable, str(WORKER)]
    workers = [
        subprocess.Popen([*command, str(i), port], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i in range(2)
    ]  # fmt: skip
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    assert [(r["devices"], r["on"]) for r in results] == [(2, 2), (2, 2)]
    assert results[0]["w"] == results[1]["w"]  # the same replicated parameters, bit for bit
    assert results[0]["history"] == results[1]["history"]

    parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2, seed=0))
    net = MLP((64, 32, 10), activation="relu", cost="softmax_cross_entropy")
    state, history = fit(net, optim.make("adam", 1e-3), parts.train, epochs=2, batch_size=64,
                         eval={"test": parts.test}, key=jax.random.key(0))  # fmt: skip
    # float32 sums over two half-batches and an all-reduce instead of one batch: the
    # same terms in another order, so agreement to rounding, amplified by 2 epochs of Adam.
    for name, values in history.items():
        np.testing.assert_allclose(results[0]["history"][name], values, rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(results[0]["w"], state.params[0]["w"], rtol=1e-3, atol=1e-5)
