"""Shared by the benchmarks that time whole runs in fresh processes.

A script measured this way answers ``--one NAME`` by running one case and
printing one JSON line; ``run_fresh`` starts it again and again, interleaving
the cases round by round, so that start-up and compilation are part of what
is measured and machine noise falls on every case alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

__all__ = ["run_fresh"]


def run_fresh(script: str, names, repeats: int, *extra: str) -> dict[str, list[dict]]:
    """``{name: [one JSON result per fresh process]}``, ``repeats`` rounds over ``names``."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names:
            print(f"  round {r + 1}/{repeats}: {name}", file=sys.stderr, flush=True)
            proc = subprocess.run(
                [sys.executable, os.path.abspath(script), "--one", name, *extra],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{proc.stderr}")
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return runs
