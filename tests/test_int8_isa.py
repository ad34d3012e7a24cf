"""CPU-aware INT8: the CPU class is read from the flags, the onnxruntime weight format follows it (or
-o int8_weights), the manifest records both, and validate on another class says so."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgekit import api
from edgekit.bundle import read_manifest, write_manifest
from edgekit.compress.isa import classify, cpu_class, int8_weights
from test_quantize import build, digits_model  # noqa: F401  (the digits-trained model, trained once)


@pytest.mark.parametrize("machine,flags,expected", [
    ("x86_64", {"avx2", "fma"}, "x86-avx2"),
    ("x86_64", {"avx2", "avx512f", "avx512bw"}, "x86-avx512"),
    ("x86_64", {"avx2", "avx512f", "avx512bw", "avx512_vnni"}, "x86-avx512-vnni"),
    ("x86_64", {"avx2", "avx_vnni"}, "x86-avx-vnni"),
    ("x86_64", {"avx2", "avx512_vnni", "amx_int8"}, "x86-amx"),
    ("x86_64", {"sse4_2"}, "x86-sse"),
    ("aarch64", {"asimd", "asimddp"}, "arm-dotprod"),
    ("aarch64", {"asimd", "asimddp", "i8mm"}, "arm-i8mm"),
    ("armv7l", {"neon", "vfpv4"}, "arm-neon"),
    ("riscv64", set(), "unknown"),
])
def test_cpu_class_from_flags(machine, flags, expected):
    assert classify(machine, flags) == expected


def test_weight_format_follows_int32_dot_products():
    assert int8_weights(cpu_class("x86_64", {"avx2"})) == "s8-7bit"
    assert int8_weights(cpu_class("x86_64", {"avx2", "avx512bw", "avx512_vnni"})) == "s8"
    assert int8_weights(cpu_class("aarch64", {"asimd", "asimddp"})) == "s8"


def _weight_range(model_file) -> tuple[int, int, int]:
    """(dtype, min, max) over the Conv weights' quantized initializers of a QDQ model."""
    graph = onnx.load(str(model_file)).graph
    inits = {i.name: i for i in graph.initializer}
    dq = {n.output[0]: n for n in graph.node if n.op_type == "DequantizeLinear"}
    values, dtypes = [], set()
    for node in graph.node:
        if node.op_type == "Conv" and node.input[1] in dq and dq[node.input[1]].input[0] in inits:
            weight = inits[dq[node.input[1]].input[0]]
            dtypes.add(weight.data_type)
            values.append(onnx.numpy_helper.to_array(weight).astype(np.int32))
    assert len(dtypes) == 1, dtypes
    joined = np.concatenate([v.ravel() for v in values])
    return dtypes.pop(), int(joined.min()), int(joined.max())


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_int8_weights_chosen_for_the_host_and_recorded(digits_model, target, tmp_path):
    result = build(digits_model, target, tmp_path / "auto", max_drop=None)
    settings = read_manifest(result.path)["compression"]["quantization"]["settings"]
    host = cpu_class()
    assert settings["cpu_class"]["name"] == host.name and settings["weights"] == int8_weights(host)
    assert settings["chosen_by"].startswith("auto")
    if target == "onnx":  # (openvino converts the same QDQ ONNX to IR)
        dtype, low, high = _weight_range(result.path / "model.onnx")
        assert dtype == onnx.TensorProto.INT8
        if settings["weights"] == "s8-7bit":  # 7 bits: the int16 pair sums of AVX2 cannot saturate
            assert -64 <= low and high <= 64
        else:
            assert low < -64 or high > 64


def test_int8_weights_option_overrides_the_host(digits_model, tmp_path):
    result = build(digits_model, "onnx", tmp_path / "u8", max_drop=None, options={"int8_weights": "u8"})
    settings = read_manifest(result.path)["compression"]["quantization"]["settings"]
    assert settings["weights"] == "u8" and settings["chosen_by"] == "-o int8_weights"
    assert _weight_range(result.path / "model.onnx")[0] == onnx.TensorProto.UINT8


def test_validate_on_another_cpu_class_says_so(digits_model, tmp_path):
    bundle = build(digits_model, "onnx", tmp_path / "b", max_drop=None).path
    data = digits_model[1].val_list
    same = api.validate(bundle, data, limit=20, record=False)
    assert not any("CPU class" in note for note in same.record["notes"])
    # The same bundle as if it had been made on another class of CPU.
    manifest = read_manifest(bundle)
    other = "x86-avx2" if cpu_class().name != "x86-avx2" else "x86-avx512-vnni"
    manifest["compression"]["quantization"]["settings"]["cpu_class"]["name"] = other
    write_manifest(bundle, manifest)
    moved = api.validate(bundle, data, limit=20, record=False)
    assert any(f"made for CPU class {other}" in note and f"validated on class {cpu_class().name}" in note
               for note in moved.record["notes"]), moved.record["notes"]
