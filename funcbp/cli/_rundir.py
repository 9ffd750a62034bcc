"""The run directory's files: who may write it, its checkpoints, and resuming it.

``funcbp.cli.run`` writes a run into it; see there for the layout. Each file is
written whole (``funcbp._jax.atomic``), so a crash leaves the previous version;
one process at a time writes it (``Claim``), and a directory a run left before
its first checkpoint holds nothing to lose: a new run replaces it, ``--resume``
starts it again from epoch 0.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from funcbp import checkpoint
from funcbp._jax import atomic
from funcbp.cli import config as _config
from funcbp.errors import CheckpointError, ConfigError
from funcbp.predict import STANDARDIZER
from funcbp.train import TrainState


class RunError(ConfigError):
    """A run directory that cannot be used as asked (exists already, cannot resume).

    A ``ConfigError``: the directory is named on the command line (``--out``,
    ``--resume``) as a config key is in a file, and is refused in one line the same way.
    """


# What a run writes into its directory (besides atomic.write's hidden temporaries).
_LAYOUT = {"config.toml", "metrics.jsonl", "checkpoints", "summary.json", "loss.png",
           "accuracy.png", "diagnostics.png", "alignment.png", STANDARDIZER, ".lock"}  # fmt: skip


class Claim:
    """The one writer's hold on a run directory ``out``, new or resumed.

    ``Claim(out, resume)`` locks ``out`` if it exists (``fcntl.flock`` on
    ``out/.lock``, which holds the holder's process id; the kernel releases it
    when the process ends, however it ends), then checks what is there;
    ``restart`` says whether the run starts at epoch 0 (a new run, or one that
    stopped before its first checkpoint). ``make()`` creates and locks a new
    directory and clears what such a run left; ``close()`` releases the lock.

    Raises:
      RunError: another process holds ``out``; or ``out`` holds a run (a new run
        would overwrite it), a finished run, or files that are not a run's.
    """

    def __init__(self, out: Path, resume: bool):
        self.out, self.resume, self._fd = out, resume, None
        if out.is_dir():
            self._lock()
        try:
            self.restart = self._check()
        except BaseException:
            self.close()
            raise

    def _lock(self) -> None:
        fd = os.open(self.out / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunError(
                f"run directory {self.out} is in use by process {holder} (it holds "
                f"{self.out / '.lock'}); wait for it to end, or stop it first"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _check(self) -> bool:
        out, found = self.out, _contents(self.out)
        if self.resume:
            if found in ("absent", "foreign") or not (out / "config.toml").is_file():
                raise RunError(f"{out} is not a run directory (no config.toml)")
            if found == "finished":
                raise RunError(f"{out} has finished (summary.json exists); nothing to resume")
            return found == "unstarted"
        if found == "foreign":
            raise RunError(
                f"run directory {out} already exists and holds files a run does not write; "
                "choose another --out"
            )
        if found in ("started", "finished"):
            raise RunError(
                f"run directory {out} already exists; choose another --out or --resume it"
            )
        return True

    def make(self) -> None:
        """Makes (or empties) ``out`` for a run that starts at epoch 0, locked; says so on
        standard error when it replaces what a run left before its first checkpoint."""
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        if self._fd is None:  # out was new: another process may have made it since
            self._lock()
            self.restart = self._check()
        keep = {".lock", "config.toml"} if self.resume else {".lock"}
        left = sorted(p for p in out.iterdir() if p.name not in keep)
        if left or self.resume:
            verb = "starting it again from epoch 0" if self.resume else "replacing it"
            print(f"funcbp: {out} holds no checkpoint (its run stopped before the first "
                  f"one); {verb}", file=sys.stderr)  # fmt: skip
        for path in left:
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _contents(out: Path) -> str:
    """What ``out`` holds: "absent", "foreign", "finished", "started" (a checkpoint) or
    "unstarted" (nothing, or what a run leaves before its first checkpoint)."""
    if not out.exists():
        return "absent"
    if not out.is_dir() or _names(out) - _LAYOUT:
        return "foreign"
    if (out / "summary.json").exists():
        return "finished"
    checkpoints = out / "checkpoints"
    if not checkpoints.exists():
        return "unstarted"
    if not checkpoints.is_dir():
        return "foreign"
    names = _names(checkpoints)
    if any(name.endswith(".npz") for name in names):
        return "started"  # a checkpoint (or what resuming names as damaged)
    # A disk that filled between a checkpoint's .json and its .npz leaves the .json alone.
    metadata = all(name.startswith(("step-", "best.")) and name.endswith(".json") for name in names)
    return "unstarted" if metadata else "foreign"


def _names(directory: Path) -> set[str]:
    """The entries of ``directory`` but ``atomic.write``'s temporaries (``.NAME.*.tmp``)."""
    return {p.name for p in directory.iterdir() if not (p.name[0] == "." and p.suffix == ".tmp")}


class Saver:
    """Checkpoints a run into ``directory``: the last ``keep``, and the best."""

    def __init__(self, directory: Path, meta: dict[str, Any], keep: int, writes: bool = True):
        self.directory, self.meta, self.keep, self.writes = directory, meta, keep, writes
        self.best = _best_so_far(directory / "best.json")

    def save(self, state: TrainState, progress, record: dict[str, float] | None) -> Path:
        """Saves; ``record`` (the last epoch's metrics) decides whether it is the best."""
        score = math.inf
        if record is not None:
            # The validation loss when there is one: the test set must not choose.
            monitor = "validation_loss" if "validation_loss" in record else "train_loss"
            score = record[monitor]
            self.meta["monitor"] = {"name": monitor, "value": score}
        best, self.best = score < self.best, min(score, self.best)
        if not self.writes:  # another process writes the run directory
            return self.directory
        return checkpoint.save_rotating(
            self.directory, state, progress, self.meta, keep=self.keep, best=best
        )


def _best_so_far(path: Path) -> float:
    """The monitored loss of a resumed run's best checkpoint (``inf``: none yet)."""
    if not path.is_file():
        return math.inf
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["monitor"]["value"])
    except (ValueError, KeyError, TypeError) as err:  # JSONDecodeError, UnicodeDecodeError
        raise CheckpointError(f"{path} is damaged ({type(err).__name__}: {err})") from None


def restore(out: Path, writer: bool, like, pieces=()):
    """The latest checkpoint's state and progress (shaped ``like``), and the records up to it;
    ``pieces``: the user activations and costs of the run's network (``MLP.user_pieces``).

    Raises:
      CheckpointError: no checkpoint fits ``like``, or its state is not finite;
        ``RunError``: ``metrics.jsonl`` is shorter than the checkpoint or damaged before it.
    """
    path = checkpoint.find(out / "checkpoints")
    saved = checkpoint.load_checkpoint(path, like, pieces=pieces)
    bad = not_finite(saved.state)
    if bad:
        raise CheckpointError(
            f"{path}: {bad} is not finite, so the run cannot go on from it; delete it "
            "(and its .json) to resume from the checkpoint before"
        )
    epoch = saved.meta["epoch"]
    metrics = out / "metrics.jsonl"
    records = read_records(metrics, epoch)
    if writer:  # epochs after the checkpoint are run again; their records go first
        text = "".join(json.dumps(r) + "\n" for r in records)
        atomic.write(metrics, text.encode())
    return saved.state, saved.progress, records


def read_records(path: Path, epochs: int | None = None) -> list[dict[str, Any]]:
    """The first ``epochs`` (default: all) records of a ``metrics.jsonl``, epoch 1 first.

    Raises:
      RunError: naming the file and its first damaged line, or that it has fewer lines.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    except UnicodeDecodeError as err:
        raise RunError(f"{path} is damaged: not text ({err})") from None
    if epochs is not None and len(lines) < epochs:
        raise RunError(f"{path} has {len(lines)} epochs, fewer than the checkpoint's {epochs}")
    records = []
    for number, line in enumerate(lines[:epochs], start=1):
        try:
            record = json.loads(line)
        except ValueError as err:  # JSONDecodeError
            raise RunError(f"{path} is damaged at line {number}: not JSON ({err})") from None
        if not (isinstance(record, dict) and record.get("epoch") == number):
            raise RunError(
                f"{path} is damaged at line {number}: expected epoch {number}'s record, "
                f"got {line[:80]!r}"
            )
        records.append(record)
    return records


def not_finite(state: TrainState) -> str | None:
    """The first array of ``state`` holding a NaN or an infinity, by its path (``None``: none)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        inexact = jax.dtypes.issubdtype(jax.numpy.result_type(leaf), np.inexact)  # not keys
        if inexact and not np.isfinite(np.asarray(leaf)).all():
            return f"state{jax.tree_util.keystr(path)}"
    return None


def last_finite_checkpoint(directory: Path, like, pieces=()) -> Path | None:
    """The latest checkpoint in ``directory`` that loads as ``like`` (its network's user
    ``pieces``) and is finite."""
    steps = [p for p in directory.glob("step-*.npz") if p.stem[5:].isdigit()]
    for path in sorted(steps, key=lambda p: int(p.stem[5:]), reverse=True):
        try:
            if not_finite(checkpoint.load_checkpoint(path, like, pieces=pieces).state) is None:
                return path
        except CheckpointError:
            continue
    return None


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented JSON, written whole; NaN and infinity become null."""
    atomic.write(path, (json.dumps(json_ready(value), indent=2) + "\n").encode())


def json_ready(value: Any) -> Any:
    """NaN and infinity are not JSON: a diverged loss or a statistic not taken is null."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_ready(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run_config(config: Path | None, sets: Sequence[str], resume: Path | None):
    """The config ``funcbp train`` runs: ``config`` with ``sets`` (``--set``) applied, or
    the resumed run's own (which they must then match).

    Raises:
      ConfigError: no config given, no run to resume, or a config that differs from
        the resumed run's, naming the first key that does.
    """
    if resume is None:
        if config is None:
            raise ConfigError("train needs a CONFIG file (or --resume DIR)")
        return _config.load(config, sets)
    if not (resume / "config.toml").is_file():
        raise ConfigError(f"{resume} is not a run directory (no config.toml)")
    saved = _config.load(resume / "config.toml")
    if config is not None or sets:
        given = _config.load(config or resume / "config.toml", sets)
        if given != saved:
            difference = _first_difference(given.to_dict(), saved.to_dict())
            raise ConfigError(
                f"differs from {resume / 'config.toml'} at {difference}; "
                "a resumed run keeps its config"
            )
    return saved


def _first_difference(given: dict, saved: dict) -> str:
    return next(
        f"{section}.{key} (given {table.get(key)!r}, saved {saved[section].get(key)!r})"
        for section, table in given.items()
        for key in sorted(table.keys() | saved[section].keys())
        if table.get(key) != saved[section].get(key)
    )
