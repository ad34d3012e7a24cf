"""What an adapter is: everything edgekit does differently per runtime, in one class per runtime.

Adapters register themselves by subclassing `RuntimeAdapter` with a `runtime`
name (the `runtime:` of a target file). Outside `edgekit/targets/`, code asks
the adapter of a bundle's runtime instead of comparing runtime names.
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from edgekit import openers, portable
from edgekit.errors import EdgekitError

if TYPE_CHECKING:
    from edgekit.compress.quantize import Int8Route
    from edgekit.compress.routes import Calibration

_ADAPTERS: dict[str, "RuntimeAdapter"] = {}
# Images per call when a model runs over many (accuracy control, parity records).
BULK_BATCH = 64


@dataclass
class Conversion:
    """What an adapter's converters get from the build in progress."""

    work: Path  # scratch space, removed after the build
    bundle: Path  # the bundle directory being written
    options: dict[str, Any]  # the target's resolved options (opset, arch, ...)
    # step(name, fn, *args) runs one converter, timed and recorded; it fails on an empty output.
    step: Callable[..., Path]


class RuntimeAdapter:
    runtime: ClassVar[str]  # an openers.RUNTIMES name (its install hint lives there too)
    # Precision hints the runtime takes (OpenVINO: f32 / bf16); empty: it computes as stored.
    precision_hints: ClassVar[tuple[str, ...]] = ()
    # Format of the GEMM that stands for this runtime's compute peak ("onnx", "paddle"), and the runtime that
    # measures it where this one cannot load such a model (None: this runtime itself).
    peak_format: ClassVar[str | None] = None
    peak_stand_in: ClassVar[str | None] = None
    # Can the runtime's converter, and its INT8 quantizer, read a Paddle 3 PIR program (inference.json)?
    reads_pir_programs: ClassVar[bool] = True
    quantizes_pir_programs: ClassVar[bool] = True
    # Do devices run this runtime's bundles with edgekit's native runner (else the Python device agent)?
    runs_natively: ClassVar[bool] = False
    # Does `open` run the model under emulation (numbers, not speed; seconds per image)?
    emulated: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "runtime" in cls.__dict__:
            _ADAPTERS[cls.runtime] = cls()

    # ---------------------------------------------------------------- running

    def runs_in_process(self) -> bool:
        """Can this interpreter load the runtime itself (else: a helper interpreter on this host)?"""
        return True

    def open(self, model_file: Path, threads: int | None = None,
             precision_hint: str | None = openers.OPENVINO_PRECISION_HINT) -> openers.Runtime:
        """The model opened on this host, configured as everywhere else edgekit runs it."""
        try:
            return openers.open_runtime(self.runtime, model_file, threads, precision_hint)
        except ImportError as exc:  # openers.py stays free of edgekit's errors; the library says what to install
            install = openers.RUNTIMES[self.runtime][1]
            raise EdgekitError(f"This bundle needs the {self.runtime} runtime, which does not import here ({exc}): "
                               f"`{install}`.") from None

    def open_bundle(self, root: Path, manifest: dict, threads: int | None = None,
                    precision_hint: str | None = None) -> openers.Runtime:
        """A bundle's model opened on this host, computing in the precision it was built for (bf16 bundles: bf16
        where this CPU has it natively) unless `precision_hint` asks otherwise ("default": the runtime's own)."""
        return self.open(root / manifest["artifact"]["model_file"], threads,
                         openers.bundle_precision_hint(manifest, precision_hint))

    def open_for_many(self, model_file: Path) -> Callable[[Any], Any]:
        """The model opened for many images at once (accuracy control, parity): `run(images) -> outputs`,
        batching inside. Default: the usual opener, batches of BULK_BATCH one after the other."""
        return in_batches(self.open(model_file))

    def helper_interpreter(self, root: Path, model_file: Path) -> tuple[str, dict]:
        """(python, environment) of the interpreter on this host that runs the model, where this one cannot."""
        raise EdgekitError(f"{root}: the {self.runtime} runtime runs in this process; it needs no helper.")

    def kernel_arch(self, manifest: dict) -> str | None:
        """The instruction set a bundle's kernels are compiled for (None: portable across CPUs)."""
        return None

    def why_not_on(self, manifest: dict, machine: str | None = None) -> str | None:
        """Why a CPU of `machine` (default: this host) cannot run the bundle, or None."""
        arch = self.kernel_arch(manifest)
        machine = machine or platform.machine()
        if arch and machine.lower() not in portable.LITE_ARCH_MACHINES.get(arch, ()):
            return f"it holds Paddle Lite {arch} kernels and this host is {machine}"
        return None

    # ---------------------------------------------------------------- building (edgekit.build calls these)

    def prepare_toolchain(self, progress: Callable[[str], None] | None = None) -> None:
        """Provision what converting for this runtime needs, before any build work (default: nothing)."""

    def reads_program(self, program: Path, precision: str) -> bool:
        """Can this runtime's converter (INT8: its quantizer) take `program` as it is? If not, a PIR
        program is re-exported first as the legacy program of the same zoo network (edgekit.export.pir_to_legacy)."""
        if program.suffix != ".json":
            return True
        return self.quantizes_pir_programs if precision == "int8" else self.reads_pir_programs

    def check_int8(self, inference_dir: Path | None) -> None:
        """Plan time: can this host make an INT8 artifact for the runtime (from `inference_dir`, if given)?"""

    def export(self, conv: Conversion, program: Path, params: Path, precision: str) -> Path:
        """The fp32 / fp16 artifact in `conv.bundle`, converted from a Paddle program; returns the model file."""
        raise NotImplementedError(f"{type(self).__name__} does not export models")

    def int8_route(self, conv: Conversion, program: Path, calibration: "Calibration",
                   learned_program: Path | None = None) -> tuple["Int8Route", Path]:
        """The INT8 route for this runtime and the FP32 model it is measured against.

        `learned_program` is QAT's quantized Paddle program (scales learned), for
        the routes that can ship it as it is.
        """
        raise NotImplementedError(f"{type(self).__name__} has no INT8 route")

    def finish_int8(self, conv: Conversion, model_file: Path) -> tuple[Path, str, bool]:
        """The route's chosen INT8 model -> the bundle's artifact; returns it, what accuracy was measured on,
        and whether that is the bundled artifact itself."""
        return copy_artifact(model_file, conv.bundle), f"the bundled artifact ({self.runtime})", True

    def precision_hint_for(self, precision: str) -> str | None:
        """The compute precision a bundle of `precision` asks its runtime for, recorded as
        artifact.precision_hint (None: the runtime computes as stored and takes no hint)."""
        return None

    def manifest_extras(self, options: dict) -> dict:
        """Runtime-specific facts the bundle's manifest records (default: none)."""
        return {}

    def write_app(self, app_dir: Path, preprocessing: dict) -> None:
        """The example app beside the model (default: the Python app, which reads preprocessing off the manifest)."""
        from edgekit.apps.python import write_python_app

        write_python_app(app_dir, self.runtime)


def in_batches(opened: Callable[[Any], Any], batch: int = BULK_BATCH) -> Callable[[Any], Any]:
    """`opened` (one batch -> outputs) over any number of images, `batch` at a time."""
    import numpy as np

    return lambda images: np.concatenate([opened(np.ascontiguousarray(images[i:i + batch]))
                                          for i in range(0, len(images), batch)])


def copy_artifact(model_file: Path, bundle: Path, stem: str = "model") -> Path:
    """Copy a model file (and its companion weights file) into the bundle as `stem.*`."""
    companions = {".xml": ".bin", ".pdmodel": ".pdiparams"}
    target = bundle / (stem + model_file.suffix)
    shutil.copyfile(model_file, target)
    if model_file.suffix in companions:
        shutil.copyfile(model_file.with_suffix(companions[model_file.suffix]),
                        bundle / (stem + companions[model_file.suffix]))
    return target


def adapter_for(runtime: str) -> RuntimeAdapter:
    from edgekit.targets import lite, onnx, openvino, paddle  # noqa: F401  (registration by import)

    try:
        return _ADAPTERS[runtime]
    except KeyError:
        raise EdgekitError(f"Unknown runtime {runtime!r}; known: {', '.join(sorted(_ADAPTERS))}.") from None


def adapter_of(manifest: dict) -> RuntimeAdapter:
    """The adapter of a bundle, from its manifest."""
    return adapter_for(manifest["target"]["runtime"])


def source_adapter() -> RuntimeAdapter:
    """Paddle Inference, which runs a user's own Paddle program: the reference of parity and validation."""
    return adapter_for("paddle-inference")
