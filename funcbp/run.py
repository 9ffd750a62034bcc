"""A configured training run: config -> data -> network -> ``fit`` -> run directory.

The run directory is assembled under a hidden temporary name beside its
destination and renamed into place only when everything in it is written, so
a failed or interrupted run never leaves a half-written directory behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from funcbp import config as _config
from funcbp import data as _data
from funcbp import optim
from funcbp.mlp import MLP
from funcbp.train import TrainState, evaluate, fit


class Prepared(NamedTuple):
    """Everything a run needs before anything is compiled."""

    net: MLP
    optimizer: optax.GradientTransformation
    splits: _data.Splits


def prepare(config: _config.RunConfig) -> Prepared:
    """Loads and splits the data and builds the network and optimizer; validates all.

    Raises:
      ValueError: the data cannot be read or do not fit the configured network.
    """
    d, m, o = config.data, config.model, config.optimizer
    if d.source == "teacher":
        dataset = _data.teacher(
            d.teacher_samples,
            d.teacher_sizes,
            seed=d.seed,
            classification=d.teacher_classification,
        )
    else:
        dataset = _data.load(d.source)
    if m.cost == "sigmoid_binary_cross_entropy" and dataset.n_classes == 2:
        # Two classes through one logit: labels become [n, 1] targets in {0, 1}.
        dataset = _data.Dataset(dataset.x, dataset.y[:, None].astype("float32"), None, dataset.name)
    splits = _data.split(dataset, validation=d.validation, test=d.test, seed=d.seed)
    if d.standardize:
        splits, _ = _data.standardize(splits)
    n_out = dataset.n_classes if dataset.n_classes is not None else dataset.n_outputs
    net = MLP(
        (dataset.n_features, *m.hidden, n_out),
        activation=m.activation,
        output_activation=m.output_activation,
        cost=m.cost,
        l2=m.l2,
        initializer=m.initializer,
    )
    for part in splits:
        if part is not None:
            _data.check_fits(part, net)
    return Prepared(net, optim.make(o.name, o.learning_rate, **o.options), splits)


def _eval_sets(splits: _data.Splits) -> dict[str, _data.Dataset]:
    # Validation first: fit monitors the first set for early stopping.
    parts = {"validation": splits.validation, "test": splits.test}
    return {name: part for name, part in parts.items() if part is not None}


def train(
    config: _config.RunConfig,
    out: Path,
    *,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs ``config`` and writes ``out/``; returns the summary.

    ``out`` holds ``config.toml`` (resolved), ``metrics.jsonl`` (one record per
    epoch) and ``summary.json``.
    """
    start = time.perf_counter()
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"run directory {out} already exists; choose another --out")
    net, optimizer, splits = prepare(config)
    t = config.train
    if t.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    batch_size = None if t.batch_size == "full" else min(t.batch_size, len(splits.train))
    eval_sets = _eval_sets(splits)
    log(
        f"funcbp: {config.data.source} ({len(splits.train)} train samples), MLP {net.sizes} "
        f"{net.activation}, {config.optimizer.name}, {t.engine} engine, "
        f"{jax.device_count()} x {jax.devices()[0].device_kind}"
    )

    def report(history: dict[str, list]) -> None:
        last = {k: v[-1] for k, v in history.items() if isinstance(v, list) and v}
        metrics = "  ".join(
            f"{k} {v:.4f}" for k, v in last.items() if k != "epoch" and isinstance(v, float)
        )
        log(f"epoch {int(last['epoch'])}/{t.epochs}  {metrics}")

    state, history = fit(
        net,
        optimizer,
        splits.train,
        epochs=t.epochs,
        batch_size=batch_size,
        engine=t.engine,
        eval=eval_sets,
        key=jax.random.key(t.seed),
        patience=t.patience or None,
        dtype=jnp.dtype(t.dtype),
        callback=report,
    )
    summary = _summary(net, state, history, splits, eval_sets, time.perf_counter() - start)
    _write_run_dir(out, config, history, summary)
    return summary


def _summary(net, state: TrainState, history, splits, eval_sets, seconds) -> dict[str, Any]:
    final = {"train": splits.train, **eval_sets}
    summary: dict[str, Any] = {}
    for name, part in final.items():
        metrics = jax.device_get(
            evaluate(net, state.params, jnp.asarray(part.x), jnp.asarray(part.y))
        )
        summary.update({f"{name}_{k}": float(v) for k, v in metrics.items()})
    devices = jax.devices()
    summary.update(
        epochs=len(history["epoch"]),
        steps=int(state.step),
        best_epoch=history.get("best_epoch"),
        wall_seconds=round(seconds, 3),
        device_kind=devices[0].device_kind,
        device_platform=devices[0].platform,
        device_count=len(devices),
        versions=_versions(),
    )
    return summary


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    names = ("funcbp", "jax", "jaxlib", "optax", "numpy")
    return {name: md.version(name) for name in names}


def _write_run_dir(out: Path, config, history: dict[str, list], summary: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        (partial / "config.toml").write_text(_config.dumps(config), encoding="utf-8")
        per_epoch = {k: v for k, v in history.items() if isinstance(v, list)}
        with open(partial / "metrics.jsonl", "w", encoding="utf-8") as f:
            for i in range(len(per_epoch["epoch"])):
                f.write(json.dumps({k: v[i] for k, v in per_epoch.items()}) + "\n")
        (partial / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
