"""How much memory there is: the host's available memory and a device's free memory.

For refusing, up front and with the figures, work that cannot fit (a network of
two billion units, a file that declares 2**40 rows) instead of dying in an
allocation, or swapping, halfway through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import jax

from funcbp.errors import ConfigError

USABLE = 0.8  # of the available memory, the most a run may plan to use; the rest is XLA's


def host_available_bytes() -> int | None:
    """Memory the host can give without swapping (Linux ``MemAvailable``), or ``None``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_available_bytes(device: jax.Device) -> int | None:
    """``device``'s free memory (its limit less what is in use), or ``None`` where JAX does not
    say (CPU devices: their memory is the host's)."""
    stats = device.memory_stats()
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def readable(n: float) -> str:
    """``n`` bytes for a message: ``"1.5 GiB"``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    power = 0
    while abs(n) >= 1024 and power < len(units) - 1:
        n, power = n / 1024, power + 1
    return f"{n:.0f} B" if power == 0 else f"{n:.1f} {units[power]}"


def refuse_unless_fits(
    what: str, needs: Mapping[str, int], devices: Sequence[jax.Device] | None = None,
    held: int = 0, advice: str = "use narrower or fewer layers",
) -> None:  # fmt: skip
    """Raises ``ConfigError`` when ``needs`` (bytes per device, by part) exceed ``USABLE``
    of the memory available on ``devices`` (this process's; default: its first device).

    ``held``: bytes that the inputs already hold there and the run reuses (a given state).
    """
    # This process's own: another process's devices do not report (nor hold) its memory.
    mine = [d for d in devices or () if d.process_index == jax.process_index()]
    devices = mine or jax.local_devices()[:1]
    per_device = sum(needs.values())
    free = [device_available_bytes(d) for d in devices]
    if all(f is not None for f in free):
        available, where, need = min(free), f"on {devices[free.index(min(free))]}", per_device
    else:  # CPU devices: all of them in the host's memory
        available, where, need = host_available_bytes(), "on the host", per_device * len(devices)
    if available is None or need <= USABLE * (available + held):
        return
    parts = ", ".join(f"{name} {readable(n)}" for name, n in needs.items() if n)
    each = (
        f" ({readable(per_device)} on each of {len(devices)} devices)" if need != per_device else ""
    )
    raise ConfigError(
        f"{what} needs about {readable(need)}{each} ({parts}), more than the "
        f"{readable(USABLE * (available + held))} it may use ({USABLE:.0%} of the "
        f"{readable(available + held)} available {where}); {advice}, or use a machine with "
        "more memory"
    )
