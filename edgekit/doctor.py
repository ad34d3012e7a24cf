"""What this machine can run: runtimes, converters and toolchains, with versions."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Check:
    component: str
    role: str
    ok: bool
    version: str
    detail: str = ""
    # Optional components (the Lite toolchain, installed by the first arm-lite build) do not fail doctor.
    optional: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# (import name, distribution name, what it is for edgekit)
_PYTHON_COMPONENTS = [
    ("paddle", "paddlepaddle", "source models, Paddle Inference runtime, Paddle-program PTQ/QAT"),
    ("paddle2onnx", "paddle2onnx", "Paddle -> ONNX converter"),
    ("onnx", "onnx", "ONNX graph checks"),
    ("onnxruntime", "onnxruntime", "ONNX runtime"),
    ("openvino", "openvino", "OpenVINO runtime and converter"),
    ("cv2", "opencv-python", "image decoding and preprocessing"),
    ("numpy", "numpy", "arrays"),
]


def _python_component(module: str, dist: str, role: str) -> Check:
    try:
        importlib.import_module(module)
    except Exception as exc:  # a broken install is exactly what doctor reports
        return Check(dist, role, False, "", f"import {module} failed: {type(exc).__name__}: {exc}")
    return Check(dist, role, True, importlib.metadata.version(dist))


def run_checks() -> list[Check]:
    checks = [Check("python", "interpreter", True, platform.python_version(),
                    f"{platform.system()} {platform.machine()}")]
    checks += [_python_component(*component) for component in _PYTHON_COMPONENTS]
    checks.append(_paddle_lite_toolchain())
    checks += _lite_runtimes()
    return checks


def _lite_runtimes() -> list[Check]:
    """The ARM Lite runtimes the native runner links (emu://, ssh devices without Python, .nb parity)."""
    import shutil

    from edgekit.errors import EdgekitError
    from edgekit.toolchains import lite_runtime

    try:
        rows = lite_runtime.status()
    except EdgekitError as exc:
        return [Check("lite-runtime", "ARM Lite runtime (native runner)", False, "", str(exc), optional=True)]
    checks = []
    for row in rows:
        arch = row["arch"]
        qemu = "qemu-aarch64" if arch == "armv8" else "qemu-arm"
        if row["path"]:
            detail = row["path"] + ("" if row["matches_optimizer"] else
                                    f"; differs from the optimizer's {lite_runtime.OPT_VERSION}")
            detail += "" if shutil.which(qemu) else f"; {qemu} missing (apt install qemu-user) for emu://"
        else:
            detail = (f"not registered: `edgekit toolchain register-lite-runtime DIR` or `edgekit toolchain "
                      f"build-lite-runtime SOURCE --arch {arch}`")
        checks.append(Check(f"lite-runtime-{arch}", f"{arch} Lite runtime (native runner, emu://, .nb parity)",
                            bool(row["path"]), row["version"] or "", detail, optional=True))
    return checks


def _paddle_lite_toolchain() -> Check:
    from edgekit.toolchains import paddle_lite

    st = paddle_lite.status()
    if st["installed"]:
        return Check("paddle-lite", "arm-lite / x86-lite optimizer (toolchain)", True, st["lite_version"],
                     f"{st['source']}: {st['path']} (Python {st['python_version']})", optional=True)
    return Check("paddle-lite", "arm-lite / x86-lite optimizer (toolchain)", False, "",
                 "not installed: run `edgekit toolchain install paddle-lite` (or set EDGEKIT_LITE_PYTHON); "
                 "the first arm-lite build also installs it", optional=True)
