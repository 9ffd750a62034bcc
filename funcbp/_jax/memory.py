"""How much memory there is: the host's available memory and a device's free memory.

For refusing, up front and with the figures, work that cannot fit (a network of
two billion units, a file that declares 2**40 rows) instead of dying in an
allocation, or swapping, halfway through.
"""

from __future__ import annotations

import os

import jax


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
