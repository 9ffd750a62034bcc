"""The run directory's files: whether it can be used, its checkpoints, and resuming it.

``funcbp.cli.run`` writes a run into it; see there for the layout. Each file is
written whole (``funcbp._jax.atomic``), so a crash leaves the previous version.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from funcbp import checkpoint
from funcbp._jax import atomic
from funcbp.errors import CheckpointError, ConfigError
from funcbp.train import TrainState


class RunError(ConfigError):
    """A run directory that cannot be used as asked (exists already, cannot resume).

    A ``ConfigError``: the directory is named on the command line (``--out``,
    ``--resume``) as a config key is in a file, and is refused in one line the same way.
    """


def check_out(out: Path, resume: bool) -> None:
    """Raises ``RunError`` unless ``out`` is new (or, to resume, an unfinished run)."""
    if not resume:
        if out.exists():
            raise RunError(
                f"run directory {out} already exists; choose another --out or --resume it"
            )
        return
    if not (out / "config.toml").is_file():
        raise RunError(f"{out} is not a run directory (no config.toml)")
    if (out / "summary.json").exists():
        raise RunError(f"{out} has finished (summary.json exists); nothing to resume")


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


def restore(out: Path, writer: bool, like):
    """The latest checkpoint's state and progress (shaped ``like``), and the records up to it.

    Raises:
      CheckpointError: no checkpoint fits ``like``; ``RunError``: ``metrics.jsonl``
        is shorter than the checkpoint or damaged before it.
    """
    saved = checkpoint.load_checkpoint(out / "checkpoints", like)
    epoch = saved.meta["epoch"]
    path = out / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if len(lines) < epoch:
        raise RunError(f"{path} has {len(lines)} epochs, fewer than the checkpoint's {epoch}")
    try:
        records = [json.loads(line) for line in lines[:epoch]]
    except ValueError as err:  # JSONDecodeError
        raise RunError(f"{path} is damaged before epoch {epoch} ({err})") from None
    if writer:  # epochs after the checkpoint are run again; their records go first
        atomic.write(path, "".join(line + "\n" for line in lines[:epoch]).encode())
    return saved.state, saved.progress, records


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
