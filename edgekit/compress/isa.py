"""The CPU class an INT8 model is made for, and the weight format each class needs from onnxruntime.

INT8 kernels differ by instruction set. With VNNI (x86) or dot-product
instructions (ARM) a u8 x s8 product is accumulated straight into int32. Without
them, x86 runs onnxruntime's u8 x s8 kernels on AVX2's vpmaddubsw, which adds two
products into int16 and saturates when both are large: the same QDQ model then
loses accuracy on an AVX2-only CPU that it keeps on a VNNI one. OpenVINO's CPU kernels
do the same (oneDNN on AVX2). The cure is in the model (weights in 7 bits), so it
is chosen when the model is made, for the CPU class it will run on, and recorded
in the manifest.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from edgekit import portable

# (class name, flags that define it), most capable first; the first class whose flags are all present wins.
X86_CLASSES = (("x86-amx", ("amx_int8",)), ("x86-avx512-vnni", ("avx512_vnni",)), ("x86-avx-vnni", ("avx_vnni",)),
               ("x86-avx512", ("avx512bw",)), ("x86-avx2", ("avx2",)))
ARM_CLASSES = (("arm-i8mm", ("i8mm",)), ("arm-dotprod", ("asimddp",)), ("arm-neon", ()))
# Classes whose INT8 dot products accumulate in int32 (no int16 saturation).
INT32_DOT_CLASSES = {"x86-amx", "x86-avx512-vnni", "x86-avx-vnni", "arm-i8mm", "arm-dotprod"}

# The INT8 weight format (edgekit.compress.routes.WEIGHT_FORMATS) per CPU class, for onnxruntime and for
# OpenVINO (which converts the same QDQ ONNX): measured by benchmarks/int8_isa.py (results/int8-isa.md). On
# an AVX2-only CPU 7-bit weights gave a digits-trained ResNet18_vd back its FP32 top-1 in both runtimes
# (97.78% -> 98.67%, FP32 98.44%; mean |logit error| 0.28 -> 0.07); full 8 bits where products
# accumulate in int32.
INT8_WEIGHTS = {True: "s8", False: "s8-7bit"}

@dataclass(frozen=True)
class CpuClass:
    name: str  # e.g. x86-avx2, x86-avx512-vnni, arm-dotprod, unknown
    int32_dot: bool
    model: str

    def to_dict(self) -> dict:
        return {"name": self.name, "int32_dot_products": self.int32_dot, "cpu_model": self.model}


def classify(machine: str, flags: set[str] | frozenset[str]) -> str:
    machine = machine.lower()
    if machine in ("x86_64", "amd64", "i686", "i386"):
        classes = X86_CLASSES
    elif machine in ("aarch64", "arm64") or machine.startswith("arm"):
        classes = ARM_CLASSES
    else:
        return "unknown"
    return next((name for name, needs in classes if all(f in flags for f in needs)),
                "x86-sse" if classes is X86_CLASSES else "unknown")


def cpu_class(machine: str | None = None, flags: set[str] | None = None, model: str | None = None) -> CpuClass:
    """This host's class (or the one described by `machine`/`flags`, as a device reports them)."""
    name = classify(machine or platform.machine(), portable.cpu_flags() if flags is None else flags)
    return CpuClass(name, name in INT32_DOT_CLASSES, model or portable.cpu_model())


def int8_weights(cpu: CpuClass) -> str:
    """The INT8 weight format that keeps accuracy on `cpu` (onnxruntime and OpenVINO alike)."""
    return INT8_WEIGHTS[cpu.int32_dot]
