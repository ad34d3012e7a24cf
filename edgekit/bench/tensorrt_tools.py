"""What the TensorRT GPU benchmark needs on this machine: an NVIDIA GPU, and trtexec or TensorRT's Python API.

`check_gpu_tools()` finds them, or raises one EdgekitError naming everything
missing and how to get it, before any export or engine build starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from edgekit import children
from edgekit.errors import EdgekitError

# NVIDIA's TensorRT containers keep trtexec here, off PATH.
CONTAINER_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
HOW_TO_GET_TENSORRT = (
    "Install TensorRT from NVIDIA: either use NVIDIA's TensorRT container (nvcr.io/nvidia/tensorrt:<yy.mm>-py3, "
    f"trtexec at {CONTAINER_TRTEXEC}), or the TensorRT tarball / apt packages from "
    "https://developer.nvidia.com/tensorrt and put its bin/ (trtexec) on PATH; or `pip install tensorrt "
    "cuda-python` on a machine that can reach NVIDIA's package index (the PyPI tensorrt wheels download their "
    "payload from pypi.nvidia.com at install time).")
HOW_TO_GET_GPU = ("Run on a machine with an NVIDIA GPU and its driver (nvidia-smi must list the GPU), ideally the "
                  "profile's own GPU (a T4 or V100 cloud instance).")


def detect_gpus() -> list[str]:
    """Names of the NVIDIA GPUs the driver reports (nvidia-smi), or [] when there is none or no driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        proc = children.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()] if proc.returncode == 0 else []


def find_trtexec() -> str | None:
    found = shutil.which("trtexec")
    if found:
        return found
    return CONTAINER_TRTEXEC if os.access(CONTAINER_TRTEXEC, os.X_OK) else None


def import_cudart():
    """cuda-python's runtime module, under its new or its old import path."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def tensorrt_python_version() -> str | None:
    """The TensorRT Python package's version when it and cuda-python both import, else None."""
    try:
        import tensorrt

        import_cudart()
    except ImportError:
        return None
    return tensorrt.__version__


@dataclass(frozen=True)
class GpuTools:
    gpus: list[str]
    trtexec: str | None
    python_api: str | None  # TensorRT Python version

    @property
    def tool(self) -> str:
        return "trtexec" if self.trtexec else "tensorrt-python"


def check_gpu_tools() -> GpuTools:
    """What the GPU path needs, or one EdgekitError naming everything missing and how to get it."""
    tools = GpuTools(gpus=detect_gpus(), trtexec=find_trtexec(), python_api=None)
    if tools.trtexec is None:
        tools = GpuTools(tools.gpus, None, tensorrt_python_version())
    missing = []
    if not tools.gpus:
        why = "nvidia-smi is not on PATH" if shutil.which("nvidia-smi") is None else "nvidia-smi lists no GPU"
        missing.append(f"an NVIDIA GPU ({why}). {HOW_TO_GET_GPU}")
    if tools.trtexec is None and tools.python_api is None:
        missing.append(f"TensorRT (no `trtexec` on PATH or at {CONTAINER_TRTEXEC}, and the `tensorrt` + "
                       f"`cuda-python` Python packages do not import). {HOW_TO_GET_TENSORRT}")
    if missing:
        raise EdgekitError("The TensorRT GPU benchmark cannot run here; missing: "
                           + " And ".join(f"({i + 1}) {m}" for i, m in enumerate(missing))
                           + " To see the published figures without measuring, add --reference-only.")
    return tools
