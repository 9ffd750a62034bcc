"""Hostile input at the command line: bounded counts, a run directory that is never a
trap, one writer per run, refusals that name the real cause (issue #17)."""

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from funcbp import checkpoint
from funcbp._jax import atomic
from funcbp.cli import _rundir, plots, run
from funcbp.cli import main as cli

ROOT = Path(__file__).resolve().parents[1]
IRIS = str(ROOT / "configs/iris.toml")
SHORT = ["--set", "train.epochs=6", "--set", "train.checkpoint_every=2"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("funcbp: error: "), err
    return err


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.epochs=3000000000"], r"train\.epochs: expected a positive integer, got "
         r"3000000000 \(at most 2147483647: funcbp counts epochs and steps in int32\)"),
        (["model.hidden=[8, 2147483648]"], r"model\.hidden: expected positive layer widths"),
        (["data.teacher_samples=10000000000"], r"data\.teacher_samples: .*at most 2147483647"),
        (["train.keep_checkpoints=0"], r"train\.keep_checkpoints: expected a positive integer"),
        (["train.patience=-1"], r"train\.patience: expected an integer >= 0"),
        (["distributed.timeout=0"], r"distributed\.timeout: expected a positive integer"),
        # Each count fits, their product does not: 1258 steps an epoch.
        (["data.source='digits'", "train.batch_size=1", "train.epochs=2000000000"],
         r"train\.epochs: 2000000000 epochs of 1258 steps are 2516000000000 steps, more than"),
    ],
)  # fmt: skip
def test_counts_are_bounded_before_anything_is_written(sets, message, tmp_path, capsys):
    args = [a for s in sets for a in ("--set", s)]
    assert cli.main(["train", IRIS, "--out", str(tmp_path / "run"), *args]) == 2
    assert re.search(message, _one_line(capsys))
    assert not (tmp_path / "run").exists()


def test_count_flags_are_bounded_as_the_keys_are(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["diagnose", IRIS, "--epochs", "3000000000"])
    assert exit_.value.code == 2
    assert "argument --epochs: expected a positive integer, got '3000000000' (at most" in (
        capsys.readouterr().err
    )
    assert cli.main(["diagnose", IRIS, "--set", "train.batch_size=1",
                     "--set", "data.source='digits'", "--epochs", "2000000000"]) == 2  # fmt: skip
    assert re.search(r"--epochs: 2000000000 epochs of 1258 steps", _one_line(capsys))


class _Killed(BaseException):
    """A stand-in for SIGKILL at a chosen moment, in process."""


def _metrics(out: Path) -> str:
    return (out / "metrics.jsonl").read_text()


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_epoch_0(
    tmp_path, capsys, monkeypatch
):
    whole = tmp_path / "whole"
    assert cli.main(["train", IRIS, "--out", str(whole), *SHORT]) == 0
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(_rundir.Saver, "save", lambda *a: (_ for _ in ()).throw(_Killed()))
        with pytest.raises(_Killed):
            cli.main(["train", IRIS, "--out", str(out), *SHORT])
    assert (out / "config.toml").is_file() and not list(out.glob("checkpoints/*.npz"))
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 0
    assert "holds no checkpoint" in capsys.readouterr().err
    assert _metrics(out) == _metrics(whole)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (out, whole)]
    assert summaries[0]["test_loss"] == summaries[1]["test_loss"]
    # A new run into such a directory replaces it, and says so.
    (out / "summary.json").unlink()
    for path in (out / "checkpoints").iterdir():
        path.unlink()
    assert cli.main(["train", IRIS, "--out", str(out), *SHORT]) == 0
    assert "replacing it" in capsys.readouterr().err


def test_a_disk_full_at_the_first_checkpoint_leaves_a_resumable_run(tmp_path, capsys, monkeypatch):
    whole = tmp_path / "whole"
    assert cli.main(["train", IRIS, "--out", str(whole), *SHORT]) == 0
    out = tmp_path / "run"
    real = atomic.write

    def full(path, content):
        if "checkpoints" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, content)

    with monkeypatch.context() as patch:
        patch.setattr(atomic, "write", full)
        capsys.readouterr()
        assert cli.main(["train", IRIS, "--out", str(out), *SHORT]) == 2
        assert "No space left on device" in _one_line(capsys)
    assert cli.main(["train", "--resume", str(out)]) == 0
    assert _metrics(out) == _metrics(whole)


def test_plots_are_written_whole_and_a_failed_plot_is_a_warning(tmp_path, monkeypatch, capsys):
    history = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "test_accuracy": [0.5, 0.7]}

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full)
        with pytest.raises(OSError, match="No space left"):
            plots.plot_history(history, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no truncated PNG, no temporary
    with plots.Plotter() as plotter:
        plotter.send(history, tmp_path / "gone")
        warnings: list[str] = []
        run._wait_for_plots(plotter, warnings, tmp_path / "gone")
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert re.fullmatch(r"the plots could not be drawn \(FileNotFoundError: .*\); draw them "
                        r"again with: funcbp plot .*gone", warnings[0])  # fmt: skip
    # A finished run's plots, drawn again from metrics.jsonl.
    out = tmp_path / "run"
    assert cli.main(["train", IRIS, "--out", str(out), *SHORT]) == 0
    (out / "loss.png").unlink()
    capsys.readouterr()
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 3}\n')
    assert cli.main(["plot", str(out)]) == 2
    assert "metrics.jsonl is damaged at line 2: expected epoch 2's record" in _one_line(capsys)


def test_one_writer_per_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", IRIS, "--out", str(out), *SHORT]) == 0
    (out / "summary.json").unlink()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); os.write(fd, b'%d' % os.getpid())\n"
         "print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        capsys.readouterr()
        for args in (["--resume", str(out)], [IRIS, "--out", str(out)]):
            assert cli.main(["train", *args]) == 2
            err = _one_line(capsys)
            assert f"run directory {out} is in use by process {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert cli.main(["train", "--resume", str(out)]) == 0  # the kernel released it


@pytest.mark.slow
def test_two_concurrent_resumes_the_second_is_refused(tmp_path):
    out = tmp_path / "run"
    long = [IRIS, "--set", "train.epochs=3000", "--set", "train.checkpoint_every=1000"]
    assert cli.main(["train", *long, "--out", str(out)]) == 0
    (out / "summary.json").unlink()
    env = {**os.environ, "FUNCBP_CACHE_DIR": ""}
    resume = [sys.executable, "-m", "funcbp", "train", "--resume", str(out)]
    first = subprocess.Popen(resume, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                             text=True)  # fmt: skip
    try:
        while (out / ".lock").read_text().strip() != str(first.pid):
            assert first.poll() is None, first.communicate()
        # Stopped while it holds the lock, so that the second resume meets it whatever the
        # two processes' speeds; the kernel keeps a stopped process's lock.
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(resume, capture_output=True, text=True, env=env, timeout=300)
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 2
        assert f"is in use by process {first.pid}" in second.stderr
        _, err = first.communicate(timeout=300)
    finally:
        first.kill()
        first.communicate()
    assert first.returncode == 0, err
    records = [json.loads(line) for line in _metrics(out).splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 3001))


def test_a_batch_larger_than_the_training_split_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", IRIS, "--out", str(out), "--set", "train.batch_size=500"]) == 2
    assert re.search(r"train\.batch_size: 500 is larger than the training split's 105 rows",
                     _one_line(capsys))  # fmt: skip
    assert not out.exists()


def test_messages_name_the_real_cause(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + Path(IRIS).read_bytes())  # accepted
    assert cli.main(["train", str(bom), "--out", "run", *SHORT]) == 0
    assert cli.main(["train", IRIS, "--out", "other", "--set", "data.source=''"]) == 2
    assert 'data.source: expected a built-in name (e.g. "digits"), "teacher" or a path, got ""' in (
        _one_line(capsys)
    )
    # A checkpoint whose parameters are not finite is not resumed from.
    out = tmp_path / "run"
    (out / "summary.json").unlink()
    latest = checkpoint.find(out)
    saved = checkpoint.load_checkpoint(latest)
    params = jax.tree.map(lambda a: a * jnp.nan, saved.state.params)
    checkpoint.save_checkpoint(latest, saved.state._replace(params=params), saved.progress,
                               saved.meta)  # fmt: skip
    assert cli.main(["train", "--resume", str(out)]) == 2
    err = _one_line(capsys)
    assert f"{latest}: state.params[0]['b'] is not finite" in err
    directory = out / "checkpoints"
    assert _rundir.last_finite_checkpoint(directory, None) != latest


def test_data_max_bytes_goes_to_the_reader(tmp_path, monkeypatch):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((8, 2), "float32"), y=np.arange(8) % 2)
    text = f"[data]\nsource = {str(path)!r}\nmax_bytes = 4096\n[model]\nhidden = [4]\n"
    (tmp_path / "run.toml").write_text(text + "cost = 'softmax_cross_entropy'\n")
    seen = {}
    real = run._data.load
    monkeypatch.setattr(run._data, "load", lambda s, **kw: seen.update(kw) or real(s, **kw))
    run.prepare(run._config.load(tmp_path / "run.toml"))
    assert seen == {"max_bytes": 4096}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_waiting_for_other_processes_says_so_and_gives_up(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "funcbp", "train", IRIS, "--out", str(tmp_path / "run"),
         "--coordinator", address, "--num-processes", "2", "--process-id", "0", "--timeout", "3"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "FUNCBP_CACHE_DIR": ""},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"process 0 of 2 at {address}: waiting for process 1 to connect (up to 3 s)" in (
        done.stderr
    )
    assert re.search(r"funcbp: error: distributed: .*gave up after 3 s", done.stderr)
    assert "Traceback" not in done.stderr and "Check failure" not in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_network_too_large_for_memory_is_refused_before_the_run_directory(tmp_path):
    command = [sys.executable, "-m", "funcbp", "train", IRIS, "--out", str(tmp_path / "run"),
               "--set", "model.hidden=[2000000000]"]  # fmt: skip
    # ulimit: a missing check fails fast instead of taking the machine's memory.
    done = subprocess.run(["bash", "-c", 'ulimit -v 33554432; exec "$@"', "-", *command],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FUNCBP_CACHE_DIR": ""})  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert re.fullmatch(r"funcbp: error: .*needs about [\d.]+ [KMGT]iB.*memory.*\n", done.stderr)
    assert not (tmp_path / "run").exists()


def _private_mounts() -> bool:
    try:
        probe = ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"]
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _private_mounts(), reason="no private mount namespaces here")
def test_a_real_full_disk_at_the_first_checkpoint_leaves_a_resumable_run(tmp_path):
    # A 64 KiB tmpfs holds config.toml, not the first checkpoint (about 60 KB of
    # parameters and Adam's moments); grown, the same run resumes and completes.
    disk, python = tmp_path / "disk", sys.executable
    disk.mkdir()
    train = f"{python} -m funcbp train {ROOT / 'configs/digits.toml'} --set model.hidden=[64]"
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {disk}\n"
        f"{train} --set train.epochs=2 --out {disk}/run; echo first=$?\n"
        f"ls -a {disk}/run {disk}/run/checkpoints\n"
        f"mount -o remount,size=16m {disk}\n"
        f"{python} -m funcbp train --resume {disk}/run; echo second=$?\n"
        f"cat {disk}/run/metrics.jsonl\n"
    )
    env = {**os.environ, "FUNCBP_CACHE_DIR": ""}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert "first=2" in done.stdout, done.stdout + done.stderr
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    assert "second=0" in done.stdout, done.stdout + done.stderr
    assert [json.loads(line)["epoch"] for line in done.stdout.splitlines()
            if line.startswith("{")] == [1, 2]  # fmt: skip
