"""What the machine says about its load and health: CPU and GPU utilisation, temperatures, and on a
Jetson the power mode. Each reader returns None where this machine has no such source, so the
governor can report "absent" instead of guessing (plain Python, no rclpy).

Sources: /proc/stat (CPU); Jetson sysfs `.../gpu.0/load` (per mille) or `nvidia-smi` (GPU);
/sys/class/thermal (temperatures); `nvpmodel -q` (Jetson power mode). tegrastats is only detected:
everything it prints is read from the same sysfs files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

JETSON_GPU_LOAD = (Path("/sys/devices/gpu.0/load"), Path("/sys/devices/platform/gpu.0/load"))
THERMAL = Path("/sys/class/thermal")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


class CpuMeter:
    """Whole-machine CPU utilisation (%) between two calls of `percent()`, from /proc/stat."""

    def __init__(self, stat: Path = Path("/proc/stat")) -> None:
        self._stat = stat
        self._last = self._times()

    def _times(self) -> tuple[int, int] | None:
        line = (_read(self._stat) or "").splitlines()[:1]
        fields = line[0].split() if line else []
        if len(fields) < 5 or fields[0] != "cpu":
            return None
        values = [int(v) for v in fields[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    def percent(self) -> float | None:
        now = self._times()
        last, self._last = self._last, now
        if now is None or last is None or now[0] <= last[0]:
            return None
        total, idle = now[0] - last[0], now[1] - last[1]
        return 100.0 * (total - idle) / total


def gpu_percent() -> float | None:
    """GPU utilisation: Jetson sysfs first, else nvidia-smi (first GPU), else None."""
    for path in JETSON_GPU_LOAD:
        text = _read(path)
        if text is not None and text.isdigit():
            return int(text) / 10.0
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=2.0, check=True,
            ).stdout  # fmt: skip
            return float(out.split()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None
    return None


def temperatures_c(thermal: Path = THERMAL) -> dict[str, float]:
    """Thermal zone name → °C (empty where the machine exposes none, like most VMs)."""
    zones: dict[str, float] = {}
    for zone in sorted(thermal.glob("thermal_zone*")):
        text = _read(zone / "temp")
        if text is not None and text.lstrip("-").isdigit():
            zones[_read(zone / "type") or zone.name] = int(text) / 1000.0
    return zones


def jetson_power_mode() -> str | None:
    """`nvpmodel -q`'s mode (e.g. 'MAXN', '15W'), None when nvpmodel is not installed."""
    if not shutil.which("nvpmodel"):
        return None
    try:
        out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=2.0).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"NV Power Mode:\s*(\S+)", out)
    return match.group(1) if match else None


@dataclass(frozen=True)
class PlatformInfo:
    """The sources this machine has, for the governor's diagnostics."""

    power_mode: str | None
    tegrastats: bool
    thermal_zones: int
    gpu: bool

    @classmethod
    def probe(cls) -> PlatformInfo:
        return cls(jetson_power_mode(), shutil.which("tegrastats") is not None, len(temperatures_c()),
                   gpu_percent() is not None)  # fmt: skip

    def absent(self) -> list[str]:
        """Human-readable list of what is missing here."""
        missing = []
        if self.power_mode is None:
            missing.append("Jetson power mode (no nvpmodel)")
        if not self.tegrastats:
            missing.append("tegrastats")
        if not self.thermal_zones:
            missing.append("thermal zones (/sys/class/thermal)")
        if not self.gpu:
            missing.append("GPU load (no Jetson sysfs, no nvidia-smi)")
        return missing
