"""One process of tests/test_distributed.py: ``python _distributed_worker.py ID PORT``.

Joins a 2-process ``jax.distributed`` run on 127.0.0.1 (CPU collectives over
gloo), trains digits data-parallel over both processes' devices and prints the
history and first-layer weights as JSON.
"""

import json
import sys

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
process_id, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=process_id)

import numpy as np  # noqa: E402

from funcbp import MLP, data, fit, optim  # noqa: E402

parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2, seed=0))
net = MLP((64, 32, 10), activation="relu", cost="softmax_cross_entropy")
state, history = fit(net, optim.make("adam", 1e-3), parts.train, epochs=2, batch_size=64,
                     eval={"test": parts.test}, key=jax.random.key(0))  # fmt: skip
w = state.params[0]["w"]
result = {"devices": jax.device_count(), "on": len(w.sharding.device_set), "history": history}
print(json.dumps({**result, "w": np.asarray(w.addressable_data(0)).tolist()}))
