"""ONNX -> OpenVINO IR (.xml + .bin)."""

from __future__ import annotations

from pathlib import Path


def onnx2openvino(src: Path, dst_xml: Path, fp16: bool = False) -> Path:
    """`fp16` compresses the stored weights; the CPU plugin still computes in f32/bf16."""
    import openvino as ov

    model = ov.convert_model(str(src))
    ov.save_model(model, str(dst_xml), compress_to_fp16=fp16)
    return dst_xml
