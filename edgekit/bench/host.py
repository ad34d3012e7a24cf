"""What the CPU measurements ran on: CPU model, usable cores, ISA features, load."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass

from edgekit import portable

@dataclass(frozen=True)
class HostInfo:
    cpu_model: str
    machine: str
    cpus_usable: int
    isa_flags: tuple[str, ...]
    load_average_1m: float | None

    @property
    def has_bf16(self) -> bool:
        return any(flag in self.isa_flags for flag in portable.BF16_FLAGS)

    @property
    def busy(self) -> bool:
        """More runnable work than cores: other processes are taking CPU time from the benchmark."""
        return self.load_average_1m is not None and self.load_average_1m > self.cpus_usable + 0.5

    def to_dict(self) -> dict:
        return {**asdict(self), "isa_flags": list(self.isa_flags), "has_bf16": self.has_bf16}


usable_cpus = portable.usable_cpus


def host_info() -> HostInfo:
    model = portable.cpu_model()
    present = portable.cpu_flags()
    flags = tuple(f for f in portable.ISA_FLAGS if f in present)
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return HostInfo(cpu_model=model, machine=platform.machine(), cpus_usable=usable_cpus(), isa_flags=flags,
                    load_average_1m=load)
