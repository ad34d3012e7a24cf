"""The CPU's physical FP32 peak: cores x clock x FP32 FLOP per cycle per core, with every input stated.

Nothing here is measured: it is the arithmetic a reader would do from the
datasheet, fed from /proc/cpuinfo and sysfs, so a measured GEMM peak can be
read against it. FLOP per cycle follows from the widest FP32 FMA the ISA
flags offer, the width of the core's FP datapath, and an assumed number of
FMA pipes (2 on every big core of the last decade; the record says so).
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from edgekit import portable

SYSFS_CPU = Path("/sys/devices/system/cpu")
FMA_PIPES = 2


@dataclass(frozen=True)
class VectorUnit:
    """What one core issues per cycle for FP32: `pipes` multiply-adds `lanes` wide."""

    isa: str
    vector_bits: int  # the widest FP32 vector the flags offer
    datapath_bits: int  # how wide the core executes it (Zen 4: 512-bit ops on 256-bit pipes)
    pipes: int  # FMA pipes (or, without FMA, one multiply and one add pipe counted as one)
    assumption: str

    @property
    def flop_per_cycle(self) -> int:
        return min(self.vector_bits, self.datapath_bits) // 32 * 2 * self.pipes  # multiply-add = 2 FLOP


def vector_unit(flags: set[str], vendor: str = "", family: int | None = None, model: int | None = None,
                machine: str = "x86_64", pipes: int = FMA_PIPES) -> VectorUnit | None:
    """The FP32 vector unit of one core from its ISA flags and, for AMD, its family; None when unknown."""
    amd = vendor == "AuthenticAMD"
    assumed = f"{pipes} FMA pipes per core (assumed, not readable from the CPU)"
    if machine.lower() in ("aarch64", "arm64") or "asimd" in flags or "neon" in flags:
        if not flags & {"asimd", "neon", "sve"}:
            return None
        # SVE's vector length is not in the flags; the common cores that have it (Neoverse V2, Cortex-X) run 128-bit.
        return VectorUnit("sve" if "sve" in flags else "neon", 128, 128, pipes,
                          assumed + "; Cortex-A53/A55 little cores have 1, so half this")
    if "avx512f" in flags:
        if amd and family == 0x19:  # Zen 4: AVX-512 decoded into two 256-bit halves
            return VectorUnit("avx512f", 512, 256, pipes, assumed + "; AMD family 0x19 (Zen 4) executes 512-bit "
                              "ops on 256-bit pipes, so AVX-512 does not double FLOP/cycle over AVX2")
        if amd:
            return VectorUnit("avx512f", 512, 512, pipes, assumed + f"; AMD family {family or 0:#x}: 512-bit datapath "
                              "(Zen 5 desktop/server; Zen 5 mobile has 256-bit pipes, so half this)")
        return VectorUnit("avx512f", 512, 512, pipes, assumed + "; Xeon Silver/Bronze and many client cores have "
                          "one 512-bit FMA unit, so half this")
    if "avx2" in flags and "fma" in flags:
        if amd and family == 0x17 and model is not None and model < 0x30:  # Zen, Zen+: 128-bit FP pipes
            return VectorUnit("avx2+fma", 256, 128, pipes, assumed + "; AMD family 0x17 below model 0x30 (Zen, "
                              "Zen+) splits 256-bit ops over 128-bit pipes")
        return VectorUnit("avx2+fma", 256, 256, pipes, assumed)
    if "avx" in flags:
        return VectorUnit("avx", 256, 256, 1, "no FMA: one 256-bit multiply and one add per cycle")
    if flags & {"sse", "sse2"}:
        return VectorUnit("sse", 128, 128, 1, "no FMA: one 128-bit multiply and one add per cycle")
    return None


def cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per stanza (x86: one per logical CPU; ARM: the same, plus a trailer)."""
    blocks = []
    for stanza in re.split(r"\n\s*\n", text):
        entries = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in stanza.splitlines())
                       if k.strip())
        if entries:
            blocks.append(entries)
    return blocks


def parse_cpu_list(text: str) -> set[int]:
    """'0-3,8' (the kernel's CPU list format) -> {0, 1, 2, 3, 8}."""
    cpus = set()
    for part in text.strip().split(","):
        if part:
            low, _, high = part.partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def core_topology(cpus: set[int], sysfs: Path, blocks: list[dict[str, str]]) -> tuple[int, str]:
    """(physical cores among `cpus`, where that came from): hyperthreads of one core count once."""
    siblings = {cpu: _read(sysfs / f"cpu{cpu}" / "topology" / "thread_siblings_list") for cpu in cpus}
    if all(siblings.values()):
        cores = {frozenset(parse_cpu_list(s) & cpus) for s in siblings.values()}
        return len(cores), "sysfs topology/thread_siblings_list"
    ids = {int(b["processor"]): (b.get("physical id"), b.get("core id")) for b in blocks
           if b.get("processor", "").isdigit() and int(b["processor"]) in cpus}
    if len(ids) == len(cpus) and all(core is not None for _, core in ids.values()):
        return len(set(ids.values())), "/proc/cpuinfo physical id + core id"
    return len(cpus), "assumed one thread per core (no topology in sysfs or /proc/cpuinfo)"


def max_frequency(cpus: set[int], sysfs: Path, blocks: list[dict[str, str]]) -> tuple[float | None, str]:
    """(GHz, where that came from): cpufreq's cpuinfo_max_freq, else the highest "cpu MHz"."""
    khz = [_read(sysfs / f"cpu{cpu}" / "cpufreq" / "cpuinfo_max_freq") for cpu in cpus]
    if all(k and k.isdigit() for k in khz):
        values = {int(k) for k in khz}
        mixed = "; cores differ in clock (big.LITTLE?): the fastest is used for all, an upper bound" \
            if len(values) > 1 else ""
        return max(values) / 1e6, "sysfs cpufreq/cpuinfo_max_freq" + mixed
    mhz = [float(b["cpu MHz"]) for b in blocks if "cpu MHz" in b and b.get("processor", "").isdigit()
           and int(b["processor"]) in cpus]
    if mhz:
        return max(mhz) / 1e3, ("/proc/cpuinfo cpu MHz (no cpufreq: the clock the kernel saw, in a VM the nominal "
                                "one; turbo unknown)")
    return None, "unknown (no cpufreq and no cpu MHz in /proc/cpuinfo)"


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class PhysicalPeak:
    """cores x GHz x FLOP/cycle: the FP32 ceiling no runtime can pass (unless an assumption is wrong)."""

    gflops: float | None
    cores: int
    logical_cpus: int
    cores_source: str
    frequency_ghz: float | None
    frequency_source: str
    isa: str | None
    vector_bits: int | None
    datapath_bits: int | None
    fma_pipes: int | None
    flop_per_cycle: int | None
    cpu: str
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    @property
    def formula(self) -> str:
        if self.gflops is None:
            return "unknown: " + "; ".join(self.assumptions)
        return (f"{self.cores} cores x {self.frequency_ghz:.3f} GHz x {self.flop_per_cycle} FP32 FLOP/cycle "
                f"= {self.gflops:.1f} GFLOP/s")

    def to_dict(self) -> dict:
        out = {**asdict(self), "assumptions": list(self.assumptions), "formula": self.formula}
        out["gflops"] = None if self.gflops is None else round(self.gflops, 2)
        return out


def physical_peak(cpuinfo: str | None = None, *, sysfs: Path = SYSFS_CPU, cpus: Iterable[int] | None = None,
                  flags: set[str] | None = None, machine: str | None = None) -> PhysicalPeak:
    """This machine's (or the given cpuinfo's) physical FP32 peak over the CPUs this process may use."""
    if cpuinfo is None:
        cpuinfo = _read(Path("/proc/cpuinfo")) or ""
        flags = portable.cpu_flags() if flags is None else flags
    blocks = cpuinfo_blocks(cpuinfo)
    first = blocks[0] if blocks else {}
    if flags is None:
        flags = set((first.get("flags") or first.get("Features") or "").split())
    usable = set(cpus) if cpus is not None else _affinity()
    machine = machine or platform.machine()
    vendor = first.get("vendor_id", "")
    family = int(first["cpu family"]) if first.get("cpu family", "").isdigit() else None
    model = int(first["model"]) if first.get("model", "").isdigit() else None
    cores, cores_source = core_topology(usable, sysfs, blocks)
    ghz, ghz_source = max_frequency(usable, sysfs, blocks)
    unit = vector_unit(flags, vendor, family, model, machine)
    notes = [unit.assumption if unit else f"FP32 vector unit unknown for {machine} with these flags"]
    if cores < len(usable):
        notes.append(f"{len(usable)} usable CPUs are {cores} cores' hyperthreads, which share each core's FMA "
                     "pipes: the peak counts cores")
    if "hypervisor" in flags:
        notes.append(f"a VM: the hypervisor shows {len(usable)} vCPUs as {cores} cores; on the host they may be "
                     "hyperthreads of fewer cores (then this peak is too high), and its clock is nominal, turbo "
                     "unknown (then too low)")
    gflops = cores * ghz * unit.flop_per_cycle if unit and ghz else None
    cpu = " ".join(p for p in (first.get("model name") or portable.cpu_model(), vendor,
                               f"family {family:#x} model {model:#x}" if family is not None and model is not None
                               else "") if p)
    return PhysicalPeak(gflops=gflops, cores=cores, logical_cpus=len(usable), cores_source=cores_source,
                        frequency_ghz=None if ghz is None else round(ghz, 4), frequency_source=ghz_source,
                        isa=unit.isa if unit else None, vector_bits=unit.vector_bits if unit else None,
                        datapath_bits=unit.datapath_bits if unit else None, fma_pipes=unit.pipes if unit else None,
                        flop_per_cycle=unit.flop_per_cycle if unit else None, cpu=cpu, assumptions=tuple(notes))
