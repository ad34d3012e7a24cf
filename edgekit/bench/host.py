"""What the CPU measurements ran on: CPU model, usable cores, ISA features, load."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from functools import lru_cache

# CPU flags that decide which kernels runtimes pick (and OpenVINO's default precision).
_INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimd", "fphp",
                      "asimddp", "sve")


@dataclass(frozen=True)
class HostInfo:
    cpu_model: str
    machine: str
    cpus_usable: int
    isa_flags: tuple[str, ...]
    load_average_1m: float | None

    @property
    def has_bf16(self) -> bool:
        return "avx512_bf16" in self.isa_flags or "amx_bf16" in self.isa_flags

    @property
    def busy(self) -> bool:
        """More runnable work than cores: other processes are taking CPU time from the benchmark."""
        return self.load_average_1m is not None and self.load_average_1m > self.cpus_usable + 0.5

    def to_dict(self) -> dict:
        return {**asdict(self), "isa_flags": list(self.isa_flags), "has_bf16": self.has_bf16}


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    model, flags = "", ()
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        return platform.processor() or platform.machine(), ()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            present = set(value.split())
            flags = tuple(f for f in _INTERESTING_FLAGS if f in present)
    return model or platform.processor() or platform.machine(), flags


def host_info() -> HostInfo:
    model, flags = _cpuinfo()
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return HostInfo(cpu_model=model, machine=platform.machine(), cpus_usable=usable_cpus(), isa_flags=flags,
                    load_average_1m=load)
