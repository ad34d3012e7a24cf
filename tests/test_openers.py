"""How edgekit opens a model in its runtime (edgekit/openers.py), beyond what every run path already checks
(tests/test_run_paths.py): OpenVINO's throughput streams, which evaluation splits many images over."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit import openers, portable
from edgekit.bundle import read_manifest
from edgekit.runtime import load
from test_validate import digits, openvino_bundle, shared, trained_weights  # noqa: F401


def _images(bundle, digits, count):  # noqa: F811
    paths = sorted((digits.root / "images").glob("*.png"))[:count]
    return load(bundle).prepare(paths)


@pytest.mark.skipif(portable.usable_cpus() < 2, reason="one CPU: OpenVINO runs a single stream, nothing to split")
def test_openvino_streams_split_a_batch_and_get_what_one_request_gets(openvino_bundle, digits):  # noqa: F811
    import openvino as ov

    model_file = openvino_bundle / read_manifest(openvino_bundle)["artifact"]["model_file"]
    batch = _images(openvino_bundle, digits, 7)  # 7: slices of unequal size
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
    streams = openers.OpenVinoStreams(model_file, config)
    assert streams.count >= 2, "2 threads in THROUGHPUT mode should give 2 streams"
    one_request = ov.Core().compile_model(str(model_file), "CPU", config).create_infer_request()
    expected = one_request.infer([batch])[0].copy()
    split = streams(batch)
    assert split.shape == expected.shape == (7, 10)
    np.testing.assert_allclose(split, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # Fixed-size slices (evaluation's way), the last one short.
    np.testing.assert_allclose(streams(batch, 3), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # A batch smaller than the stream count uses only as many streams as it has images.
    np.testing.assert_allclose(streams(batch[:1]), expected[:1], rtol=1e-4, atol=1e-4 * np.abs(expected).max())

