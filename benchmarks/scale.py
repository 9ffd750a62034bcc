"""Throughput of the large MLP: samples/s and achieved FLOP/s against the matmul peak.

For 784-2048-2048-10 (softmax cross-entropy, SGD with momentum) at batch 512 and
2048, in float32 and with bfloat16 compute (float32 master parameters), this
times one compiled epoch of 4 steps over all devices JAX sees (data-parallel;
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` makes N CPU devices) and
reports samples per second and FLOP/s as 6 x weights x batch per step, as a
fraction of the peak matmul rate measured in the same run on one device (the
best of square products and of the MLP's own 512/2048 x 2048 x 2048 shape, same
dtype), times the device count.

    python benchmarks/scale.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import funcbp
from funcbp import optim, sharding

SIZES = (784, 2048, 2048, 10)
STEPS = 4


def _median_seconds(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_peak(dtype, repeats: int) -> float:
    """The best FLOP/s of a set of products in ``dtype``: squares, and the MLP's own shape."""
    product = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
    rates = []
    for m, k, n in ((1024, 1024, 1024), (4096, 4096, 4096), (512, 2048, 2048), (2048, 2048, 2048)):
        a = jax.random.normal(jax.random.key(0), (m, k)).astype(dtype)
        b = jax.random.normal(jax.random.key(1), (k, n)).astype(dtype)
        rates.append(2 * m * k * n / _median_seconds(product, (a, b), repeats))
    return max(rates)


def step_throughput(batch: int, compute_dtype: str | None, repeats: int) -> tuple[float, float]:
    """(samples/s, FLOP/s) of training epochs of ``STEPS`` steps over all devices."""
    net = funcbp.MLP(SIZES, cost="softmax_cross_entropy", compute_dtype=compute_dtype)
    opt = optim.make("momentum", 0.01, momentum=0.9)
    mesh = sharding.data_mesh()
    epoch = jax.jit(funcbp.make_epoch(net, opt, batch_size=batch, mesh=mesh))
    state = sharding.replicate(funcbp.init_state(net, opt, jax.random.key(0)), mesh)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch * STEPS, SIZES[0]), np.float32)
    y = rng.integers(0, SIZES[-1], batch * STEPS)
    # As fit places them: the rows split over the devices, the state on every one.
    with sharding.on_mesh(mesh):
        seconds = _median_seconds(epoch, (state, *sharding.split_rows((x, y), mesh)), repeats)
    seconds /= STEPS
    return batch / seconds, 6 * net.num_params * batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    devices = jax.devices()
    print(f"{len(devices)} x {devices[0].device_kind} ({devices[0].platform})")
    print(f"{'dtype':<9} {'batch':>6} {'samples/s':>10} {'GFLOP/s':>9} {'peak GFLOP/s':>13} "
          f"{'of peak':>8}")  # fmt: skip
    for name, compute, dtype in (("float32", None, jnp.float32),
                                 ("bfloat16", "bfloat16", jnp.bfloat16)):  # fmt: skip
        peak = matmul_peak(dtype, repeats) * len(devices)
        for batch in (512, 2048):
            samples, flops = step_throughput(batch, compute, repeats)
            print(f"{name:<9} {batch:>6} {samples:>10,.0f} {flops / 1e9:>9.1f} "
                  f"{peak / 1e9:>13.1f} {flops / peak:>8.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
