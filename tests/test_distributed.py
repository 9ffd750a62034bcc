"""Two processes on 127.0.0.1 with jax.distributed train as one data-parallel run."""

import json
import os
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
    try:
        outputs = [worker.communicate(timeout=300) for worker in workers]
    finally:
        for worker in workers:  # one failed: do not leave the other waiting for it
            worker.kill()
            worker.wait()
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    results = [json.loads(out.splitlines()[-1]) for out, _ in outputs]
    assert [(r["devices"], r["on"]) for r in results] == [(2, 2), (2, 2)]
    assert results[0]["w"] == results[1]["w"]  # the same replicated parameters, bit for bit
    assert results[0]["history"] == results[1]["history"]
    # Each process held only its 719 of the 1438 training rows; the same rows in the
    # same order as when every process passed all of them, so the same program runs.
    assert [r["own_rows"] for r in results] == [719, 719]
    own, whole = results[0]["own_history"], results[0]["history"]
    assert own["train_loss"] == whole["train_loss"]
    # The test set split in halves too: its mean is two partial sums, all-reduced.
    for name in ("test_loss", "test_accuracy"):
        np.testing.assert_allclose(own[name], whole[name], rtol=1e-6, err_msg=name)

    parts, _ = data.standardize(data.split(data.load("digits"), validation=0.0, test=0.2, seed=0))
    net = MLP((64, 32, 10), activation="relu", cost="softmax_cross_entropy")
    test = (parts.test.x[:358], parts.test.y[:358])  # as the workers evaluate
    state, history = fit(net, optim.make("adam", 1e-3), parts.train, epochs=2, batch_size=64,
                         eval={"test": test}, key=jax.random.key(0))  # fmt: skip
    # float32 sums over two half-batches and an all-reduce instead of one batch: the
    # same terms in another order, so agreement to rounding, amplified by 2 epochs of Adam.
    for name, values in history.items():
        np.testing.assert_allclose(results[0]["history"][name], values, rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(results[0]["w"], state.params[0]["w"], rtol=1e-3, atol=1e-5)


def _train_on_two_processes(*args: str, cwd: Path, port: int | None = None) -> list[str]:
    """``funcbp train ARGS`` as two jax.distributed processes; their standard outputs.

    Given ``port``, the config names the coordinator: only ``--process-id`` is passed.
    """
    env = {**os.environ, "FUNCBP_CACHE_DIR": ""}
    command = [sys.executable, "-m", "funcbp", "train", *args]
    if port is None:
        command += ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    command.append("--process-id")
    procs = [subprocess.Popen([*command, str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=cwd, env=env) for i in range(2)]  # fmt: skip
    try:
        results = [proc.communicate(timeout=300) for proc in procs]
    finally:
        for proc in procs:  # one failed: do not leave the other waiting for it
            proc.kill()
            proc.wait()
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    return [out for out, _ in results]


@pytest.mark.slow
def test_the_command_line_on_two_processes_writes_one_run_directory_and_resumes(tmp_path):
    out = tmp_path / "run"
    digits = str(Path(__file__).parents[1] / "configs" / "digits.toml")
    outs = _train_on_two_processes(digits, "--out", str(out), "--set", "train.epochs=2",
                                   "--set", "train.checkpoint_every=1", cwd=tmp_path)  # fmt: skip
    # Process 0 reports and writes; process 1 prints no progress (gloo says it connected).
    assert "run directory" in outs[0] and "epoch" not in outs[1]
    first = json.loads((out / "summary.json").read_text())
    assert first["device_count"] == 2 and first["epochs"] == 2
    # The summary evaluates the 359 test rows split over the 2 devices (padded to 360)
    # as fit did after the last epoch: the padding row counts in neither.
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert first["test_loss"] == pytest.approx(last["test_loss"], rel=1e-6)
    # As if killed after epoch 1: the last checkpoint and the summary are gone.
    (out / "summary.json").unlink()
    for path in (out / "checkpoints").glob(f"step-{first['steps']:09d}.*"):
        path.unlink()
    _train_on_two_processes("--resume", str(out), cwd=tmp_path)
    again = json.loads((out / "summary.json").read_text())
    metrics = [k for k in first if k.endswith(("_loss", "_accuracy"))]
    assert {k: again[k] for k in metrics} == {k: first[k] for k in metrics}


@pytest.mark.slow
def test_the_command_line_on_two_processes_reads_one_file_per_process(tmp_path):
    """Each process reads its own file; jax.distributed starts from the config's table."""
    digits = data.load("digits")
    for i, rows in enumerate((slice(0, 900), slice(900, None))):  # 900 and 897 samples
        np.savez(tmp_path / f"part-{i}.npz", x=digits.x[rows], y=digits.y[rows])
    config, port = tmp_path / "parts.toml", _free_port()
    config.write_text(
        '[data]\nsource = "part-{process}.npz"\ntest = 0.2\n'
        '[model]\nhidden = [32]\ncost = "softmax_cross_entropy"\n'
        "[train]\nepochs = 3\nbatch_size = 64\n"
        f'[distributed]\ncoordinator = "127.0.0.1:{port}"\nnum_processes = 2\n'
    )
    outs = _train_on_two_processes(str(config), "--out", "run", cwd=tmp_path, port=port)
    # Each file split alone: 720 + 180 and 718 + 179 rows; both cut to 718 + 179.
    assert "(1436 train samples)" in outs[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]

    # The same run in one process over the files' parts joined in process order,
    # standardised with the statistics of all training rows.
    parts = [data.split(data.load(tmp_path / f"part-{i}.npz"), validation=0.0, test=0.2, seed=0)
             for i in range(2)]  # fmt: skip

    def joined(part: str, rows: int) -> data.Dataset:
        kept = [getattr(p, part) for p in parts]
        x, y = (np.concatenate([getattr(k, a)[:rows] for k in kept]) for a in ("x", "y"))
        return data.Dataset(x, y, 10, part)

    joined, _ = data.standardize(data.Splits(joined("train", 718), None, joined("test", 179)))
    net = MLP((64, 32, 10), activation="relu", cost="softmax_cross_entropy")
    _, history = fit(net, optim.make("adam", 1e-3), joined.train, epochs=3, batch_size=64,
                     eval={"test": joined.test}, key=jax.random.key(0))  # fmt: skip
    # Two devices' partial sums and an all-reduce against one device's sums, and the
    # statistics summed over two processes: agreement to float32 rounding, amplified
    # by 3 epochs of Adam.
    for name in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose([m[name] for m in metrics], history[name], rtol=1e-4)
    assert summary["test_loss"] == pytest.approx(history["test_loss"][-1], rel=1e-4)
