"""The Paddle Lite adapter: naive-buffer `.nb` models (targets/arm-lite.yaml, targets/x86-lite.yaml).

The `paddlelite` wheel exists only for CPython <= 3.10, so on a build host a
`.nb` with x86 kernels runs in the managed toolchain's own interpreter.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgekit import openers
from edgekit.errors import EdgekitError
from edgekit.targets.base import Conversion, RuntimeAdapter, in_batches, source_adapter
from edgekit.targets.paddle import paddle_ptq_route


class PaddleLiteAdapter(RuntimeAdapter):
    runtime = "paddle-lite"
    # Lite cannot load a GEMM built here; onnxruntime's peak stands in (the record says so).
    peak_format = "onnx"
    peak_stand_in = "onnxruntime"
    reads_pir_programs = False
    quantizes_pir_programs = False
    runs_natively = True

    def runs_in_process(self) -> bool:
        return importlib.util.find_spec("paddlelite") is not None

    def open(self, model_file: Path, threads: int | None = None,
             precision_hint: str | None = openers.OPENVINO_PRECISION_HINT) -> openers.Runtime:
        if self.runs_in_process():
            return super().open(model_file, threads, precision_hint)
        from edgekit.toolchains import paddle_lite

        toolchain = paddle_lite.find(install_missing=False)
        return openers.Runtime(self.runtime, lambda batch: paddle_lite.run_nb(model_file, batch, toolchain=toolchain),
                                toolchain.lite_version, "as stored", threads_applied=False)

    def helper_interpreter(self, root: Path, model_file: Path) -> tuple[str, dict]:
        from edgekit.toolchains import paddle_lite

        foreign = paddle_lite.foreign_kernels(model_file)
        if foreign:
            raise EdgekitError(f"Bundle {root} holds {'/'.join(sorted(foreign))} kernels, which cannot run on "
                               "this host; bench it on its device (--device adb://... or ssh://...), or bench an "
                               "x86-lite bundle here.")
        toolchain = paddle_lite.find(install_missing=False)
        return str(toolchain.python), toolchain.environment()

    def kernel_arch(self, manifest: dict) -> str | None:
        return manifest["target"].get("options", {}).get("arch")

    # ---------------------------------------------------------------- building

    def prepare_toolchain(self, progress=None) -> None:
        # The optimizer (opt) runs in the managed toolchain's interpreter; provision it before any work.
        from edgekit.toolchains import paddle_lite

        paddle_lite.find(install_missing=True,
                         progress=(lambda step, done, total: progress(f"paddle-lite toolchain: {step}"))
                         if progress else None)

    def export(self, conv: Conversion, program: Path, params: Path, precision: str) -> Path:
        return _to_nb(conv, program, params)

    def int8_route(self, conv, program, calibration, learned_program=None):
        # By default the quantized program is evaluated with Paddle Inference, then converted; with
        # `--option int8_eval=emulated` every candidate (and the FP32 model) is converted and run as a .nb.
        evaluator = _EmulatedNb(conv) if conv.options.get("int8_eval") == "emulated" else source_adapter()
        return paddle_ptq_route(conv, program, calibration, learned_program, evaluator), program

    def finish_int8(self, conv: Conversion, model_file: Path) -> tuple[Path, str, bool]:
        nb = _to_nb(conv, model_file, model_file.with_suffix(".pdiparams"))
        if conv.options.get("int8_eval") == "emulated":
            return nb, "the .nb itself, on the emulated ARM device (qemu-user: numbers, not speed)", True
        return nb, ("the quantized Paddle program (Paddle Inference, fake-quantized) that Paddle Lite's optimizer "
                    "converted; the .nb itself runs on the device only"), False

    def manifest_extras(self, options: dict) -> dict:
        """The optimizer's version, and the registered runtime the native runner would link for this arch:
        a runtime of another version may warn on (2.12) or crash on (2.9/2.10) the .nb."""
        from edgekit.toolchains import lite_runtime

        arch = options.get("arch")
        runtime = lite_runtime.registered().get(arch) if arch in ("armv8", "armv7") else None
        record = {"optimizer": lite_runtime.OPT_VERSION, "runtime": None}
        if runtime is not None:
            record["runtime"] = {"arch": runtime.arch, "version": runtime.version, "path": str(runtime.root),
                                 "matches_optimizer": runtime.version_matches}
        return {"lite": record}

    def write_app(self, app_dir: Path, preprocessing: dict) -> None:
        from edgekit.export.lite import write_lite_app

        write_lite_app(app_dir, preprocessing)


class _EmulatedNb:
    """Opens a Paddle program as the .nb it becomes, under qemu-user: INT8 accuracy control on the .nb itself."""

    runtime = "paddle-lite (emulated ARM, qemu-user)"
    emulated = True

    def __init__(self, conv: Conversion):
        self.arch = conv.options.get("arch", "armv8")
        self.work = conv.work / "nb-eval"

    def open(self, program: Path):
        from edgekit.native.runner import emulated_runner
        from edgekit.export.lite import paddle2lite

        self.work.mkdir(parents=True, exist_ok=True)
        nb = paddle2lite(program, program.with_suffix(".pdiparams"),
                         self.work / f"{len(list(self.work.glob('*.nb')))}.nb", arch=self.arch)
        runner, _ = emulated_runner(nb, "aarch64" if self.arch == "armv8" else "armv7")
        return runner

    def open_for_many(self, program: Path):
        return in_batches(self.open(program))


def _to_nb(conv: Conversion, program: Path, params: Path) -> Path:
    from edgekit.export.lite import paddle2lite

    return conv.step("paddle2lite", paddle2lite, program, params, conv.bundle / "model.nb", conv.options["arch"])
