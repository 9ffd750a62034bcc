"""One process of tests/test_distributed.py: ``python _distributed_worker.py ID PORT``.

Joins a 2-process ``jax.distributed`` run on 127.0.0.1 (CPU collectives over
gloo), trains digits data-parallel over both processes' devices and prints the
history and first-layer weights as JSON: once with every process passing the
whole data set, once with each passing only its half (``rows_from_processes``).
"""

import json
import sys

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
process_id, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)

import numpy as np  # noqa: E402

from funcbp import MLP, data, fit, optim, sharding  # noqa: E402

parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2, seed=0))
# 1438 training rows; the test set's first 358 of 359, an even number to halve below.
train, test = (parts.train.x, parts.train.y), (parts.test.x[:358], parts.test.y[:358])
net = MLP((64, 32, 10), activation="relu", cost="softmax_cross_entropy")
state, history = fit(net, optim.make("adam", 1e-3), train, epochs=2, batch_size=64,
                     eval={"test": test}, key=jax.random.key(0))  # fmt: skip
w = state.params[0]["w"]
result = {"devices": jax.device_count(), "on": len(w.sharding.device_set), "history": history}

# Each process loads only its half of every split; the halves join in process order.
halves = {}
for name, (x, y) in {"train": train, "test": test}.items():
    k = len(x) // 2
    mine = slice(process_id * k, (process_id + 1) * k)
    halves[name] = sharding.rows_from_processes((x[mine], y[mine]))
_, own_history = fit(net, optim.make("adam", 1e-3), halves["train"], epochs=2, batch_size=64,
                     eval={"test": halves["test"]}, key=jax.random.key(0))  # fmt: skip
result["own_rows"] = len(sharding.local_rows(halves["train"][0]))
result["own_history"] = own_history
print(json.dumps({**result, "w": np.asarray(w.addressable_data(0)).tolist()}))
