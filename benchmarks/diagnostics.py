"""What per-layer diagnostics cost: epoch time with them off and on, side by side.

For the digits and large configurations (their networks, optimizers and batch
sizes; the large one on 8 batches of its teacher data per epoch) this compiles
``make_epoch`` four ways and times them interleaved in rotating order:

  off A, off B   diagnostics_every=None, twice: the same program, so their ratio
                 is the noise floor against which "off costs nothing" is read
  on /10         statistics every 10th step (under lax.cond)
  on /1          statistics every step (for scale)

and prints the median epoch time of each and its ratio to "off A".

    python benchmarks/diagnostics.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

import funcbp
from funcbp.cli import config as _config
from funcbp.cli import run

SETTINGS = {"off A": None, "off B": None, "on /10": 10, "on /1": 1}


def _epoch_fns(net, optimizer, batch_size):
    return {
        name: jax.jit(funcbp.make_epoch(net, optimizer, batch_size=batch_size,
                                        diagnostics_every=every))
        for name, every in SETTINGS.items()
    }  # fmt: skip


def bench(path: str, overrides: list[str], samples: int | None, epochs_per_block: int, repeats):
    config = _config.load(path, overrides)
    net, optimizer, splits = run.prepare(config)
    x, y = splits.train.x, splits.train.y
    if samples is not None:
        x, y = x[:samples], y[:samples]
    batch = config.train.batch_size
    state = funcbp.init_state(net, optimizer, jax.random.key(0))
    fns = _epoch_fns(net, optimizer, batch)
    for fn in fns.values():  # compile and warm up
        jax.block_until_ready(fn(state, x, y))
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            start = time.perf_counter()
            for _ in range(epochs_per_block):
                out = fns[name](state, x, y)
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / epochs_per_block)
    steps = len(x) // batch
    print(f"\n{path}: MLP {net.sizes}, batch {batch}, {steps} steps per epoch")
    print(f"{'diagnostics':<12} {'ms/epoch':>9} {'vs off A':>9}")
    base = statistics.median(times["off A"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<12} {median * 1e3:9.2f} {median / base:9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    repeats = parser.parse_args().repeats
    bench("configs/digits.toml", [], None, epochs_per_block=20, repeats=repeats)
    bench("configs/large.toml", ["data.teacher_samples=5120"], 4096, epochs_per_block=1,
          repeats=repeats)  # fmt: skip


if __name__ == "__main__":
    main()
