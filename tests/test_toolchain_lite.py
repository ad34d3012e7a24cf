"""The managed Paddle Lite toolchain and the paddle2lite converter, with the real toolchain.

The toolchain is provisioned once into $EDGEKIT_CACHE_DIR (scripts/test.sh
points it at .peers/cache, which outlives test sessions; without it the same
directory is used) and shared by all workers through install()'s file lock.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.export import lite
from edgekit.toolchains import paddle_lite

REPO = Path(__file__).resolve().parents[1]

_EXPORT_RESNET18 = textwrap.dedent('''
    import sys
    import numpy as np
    import paddle
    from paddle import inference
    from edgekit.zoo import create_model

    out = sys.argv[1]
    paddle.seed(0)
    model = create_model("ResNet18", num_classes=10)
    model.eval()
    spec = paddle.static.InputSpec([None, 3, 224, 224], "float32", "x")
    paddle.jit.save(model, out + "/inference", input_spec=[spec])

    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype("float32")
    config = inference.Config(out + "/inference.pdmodel", out + "/inference.pdiparams")
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(list(x.shape))
    handle.copy_from_cpu(x)
    predictor.run()
    np.save(out + "/input.npy", x)
    np.save(out + "/expected.npy", predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu())
''')


@pytest.fixture(scope="session")
def lite_toolchain():
    """The managed toolchain, installed (first time: ~30 s of downloads) or re-verified."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paddle_lite.CACHE_ENV_VAR,
                     os.environ.get(paddle_lite.CACHE_ENV_VAR) or str(REPO / ".peers" / "cache"))
        patch.delenv(paddle_lite.PYTHON_ENV_VAR, raising=False)
        try:
            info = paddle_lite.install()
        except EdgekitError as exc:
            if os.environ.get("CI"):
                pytest.fail(str(exc))
            pytest.skip(str(exc))
        yield info


@pytest.fixture(scope="session")
def resnet18_program(tmp_path_factory):
    """A zoo ResNet18 (10 classes, seeded init) as a legacy program, with Paddle Inference outputs."""
    out = tmp_path_factory.mktemp("resnet18-legacy")
    env = {**os.environ, "FLAGS_enable_pir_api": "0"}  # legacy .pdmodel: only before paddle is imported
    proc = subprocess.run([sys.executable, "-c", _EXPORT_RESNET18, str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


# ---------------------------------------------------------------- toolchain

@pytest.mark.heavy
def test_install_is_cached_and_reverified(lite_toolchain):
    steps = []
    again = paddle_lite.install(progress=lambda step, done, total: steps.append((step, done, total)))
    assert again == lite_toolchain
    assert steps[-1][0].startswith("Verified cached")  # nothing downloaded the second time
    assert again.source == "managed"
    assert again.lite_version == paddle_lite.LITE_VERSION
    assert again.python_version.startswith("3.9.")
    assert again.root == paddle_lite.toolchain_dir()
    status = paddle_lite.status()
    assert status["installed"] and status["source"] == "managed"
    assert status["lite_version"] == "2.13rc0" and status["python"] == str(again.python)


def test_damaged_toolchain_is_detected(tmp_path):
    # verify on a tiny tree with a real manifest: a changed byte must be noticed.
    from edgekit.toolchains import lite_provision

    (tmp_path / "lib.so").write_bytes(b"original")
    manifest = {"pins": lite_provision.pins_as_dict(), "files": lite_provision.record_files(tmp_path),
                "python_version": "3.9.2", "lite_version": "2.13rc0"}
    (tmp_path / paddle_lite.MANIFEST_NAME).write_text(__import__("json").dumps(manifest))
    assert lite_provision.verify(tmp_path) is None
    (tmp_path / "lib.so").write_bytes(b"tampered")
    assert "lib.so" in lite_provision.verify(tmp_path)


def test_missing_toolchain_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(paddle_lite.CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.delenv(paddle_lite.PYTHON_ENV_VAR, raising=False)
    with pytest.raises(EdgekitError, match="not installed") as info:
        paddle_lite.find(install_missing=False)
    assert paddle_lite.PYTHON_ENV_VAR in str(info.value)
    status = paddle_lite.status()
    assert status["installed"] is False and status["source"] == "missing"
    assert status["path"] == str(tmp_path / "toolchains" / "paddle-lite-2.13rc0")


def test_lite_python_that_does_not_exist_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "python3.9"
    monkeypatch.setenv(paddle_lite.PYTHON_ENV_VAR, str(missing))
    with pytest.raises(EdgekitError, match=str(missing)) as info:
        paddle_lite.find()
    assert info.value.exit_code == 2
    status = paddle_lite.status()
    assert status["installed"] is False and status["source"] == paddle_lite.PYTHON_ENV_VAR
    assert str(missing) in status["detail"]


def test_lite_python_without_paddlelite_is_refused(monkeypatch):
    monkeypatch.setenv(paddle_lite.PYTHON_ENV_VAR, sys.executable)  # edgekit's own 3.11: no paddlelite
    with pytest.raises(EdgekitError, match="cannot import paddlelite"):
        paddle_lite.find()


@pytest.mark.heavy
def test_lite_python_from_the_environment_is_used(lite_toolchain, tmp_path, monkeypatch):
    # A user's own interpreter, here a wrapper that starts the managed 3.9 with its environment.
    wrapper = tmp_path / "python"
    exports = " ".join(f"{k}={v!r}" for k, v in lite_toolchain.environment().items()
                       if k.startswith("PYTHON") or k == "LD_LIBRARY_PATH")
    wrapper.write_text(f'#!/bin/sh\nexec env {exports} {lite_toolchain.python} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv(paddle_lite.PYTHON_ENV_VAR, str(wrapper))
    info = paddle_lite.find()
    assert info.source == paddle_lite.PYTHON_ENV_VAR and info.python == wrapper
    assert info.lite_version == "2.13rc0"


@pytest.mark.heavy
def test_optimizer_failure_carries_its_output(lite_toolchain, tmp_path):
    (tmp_path / "model.pdmodel").write_bytes(b"not a program")
    (tmp_path / "model.pdiparams").write_bytes(b"")
    with pytest.raises(EdgekitError, match="optimizer failed") as info:
        paddle_lite.run_opt(tmp_path / "model.pdmodel", tmp_path / "model.pdiparams", tmp_path / "out")
    assert "exit code" in str(info.value) or "killed by" in str(info.value)
    assert not (tmp_path / "out.nb").exists()


# ---------------------------------------------------------------- converter

@pytest.mark.heavy
def test_xshape_is_restored_for_lite(resnet18_program):
    program = lite.read_program(resnet18_program / "inference.pdmodel")
    flatten = [op for op in program.blocks[0].ops if op.type == "flatten_contiguous_range"]
    assert flatten and not any(o.parameter == "XShape" for o in flatten[0].outputs)  # as Paddle 3 writes it
    assert lite.add_missing_xshape(program) == len(flatten)
    xshape_name = [o for o in flatten[0].outputs if o.parameter == "XShape"][0].arguments[0]
    xshape = [v for v in program.blocks[0].vars if v.name == xshape_name][0]
    assert list(xshape.type.dense_tensor.tensor.dims) == [0, -1, 512, 1, 1]
    assert lite.add_missing_xshape(program) == 0  # idempotent


@pytest.mark.heavy
def test_paddle2lite_armv8(lite_toolchain, resnet18_program, tmp_path):
    src = resnet18_program
    nb = lite.paddle2lite(src / "inference.pdmodel", src / "inference.pdiparams", tmp_path / "model.nb")
    assert nb == tmp_path / "model.nb" and nb.stat().st_size > 40_000_000  # 11.2M float32 weights
    head = nb.read_bytes()[:18]
    # naive buffer: uint16 meta version 2, then the optimizer version, NUL-padded to 16 bytes
    assert head == b"\x02\x00" + b"v2.13-rc".ljust(16, b"\x00")
    info = paddle_lite.nb_info(nb)
    assert info["opt_version"] == "v2.13-rc" and "arm" in info["kernel_targets"]
    assert "x86" not in info["kernel_targets"]
    # One ARM .nb serves both ABIs, and the output is reproducible byte for byte.
    armv7 = lite.paddle2lite(src / "inference.pdmodel", src / "inference.pdiparams", tmp_path / "v7.nb", arch="armv7")
    assert armv7.read_bytes() == nb.read_bytes()


@pytest.mark.heavy
def test_x86_nb_matches_paddle_inference(lite_toolchain, resnet18_program, tmp_path):
    src = resnet18_program
    nb = lite.paddle2lite(src / "inference.pdmodel", src / "inference.pdiparams", tmp_path / "x86.nb", arch="x86")
    assert paddle_lite.nb_info(nb)["kernel_targets"] == ["host", "x86"]
    x, expected = np.load(src / "input.npy"), np.load(src / "expected.npy")
    got = paddle_lite.run_nb(nb, x)  # batch of 2 through the dynamic batch dimension
    assert got.shape == expected.shape == (2, 10)
    max_abs = float(np.abs(got - expected).max())
    assert max_abs <= 1e-4 * max(1.0, float(np.abs(expected).max())), max_abs
    assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.heavy
def test_run_nb_refuses_arm_models(lite_toolchain, resnet18_program, tmp_path):
    # The x86 light library would run ARM kernels' model and return garbage, silently.
    src = resnet18_program
    nb = lite.paddle2lite(src / "inference.pdmodel", src / "inference.pdiparams", tmp_path / "arm.nb")
    with pytest.raises(EdgekitError, match="arm kernels"):
        paddle_lite.run_nb(nb, np.load(src / "input.npy"))


@pytest.mark.heavy
def test_paddle2lite_armv8_int8(lite_toolchain, resnet18_program, tmp_path):
    # Paddle's own PTQ program (quantize_linear/dequantize_linear) becomes an INT8 ARM .nb.
    from edgekit.compress.routes import PaddlePTQRoute
    from edgekit.targets.base import source_adapter

    images = np.random.default_rng(0).random((2, 3, 224, 224), dtype=np.float32)
    route = PaddlePTQRoute(resnet18_program / "inference.pdmodel", images, algorithm="minmax", per_channel=True,
                           batch_size=1, runtime=source_adapter(), work=tmp_path / "work")
    quantized = route.quantize([], tmp_path / "int8").parent
    assert lite.is_quantized(lite.read_program(quantized / "inference.pdmodel"))
    nb = lite.paddle2lite(quantized / "inference.pdmodel", quantized / "inference.pdiparams", tmp_path / "int8.nb")
    assert "arm" in paddle_lite.nb_info(nb)["kernel_targets"]
    assert nb.stat().st_size < 0.4 * 11_200_000 * 4  # int8 weights: about a quarter of the float32 .nb


def test_quantized_program_is_refused_for_x86(tmp_path):
    program = lite._framework_pb2().ProgramDesc()
    block = program.blocks.add()
    block.idx, block.parent_idx = 0, -1
    block.ops.add().type = "quantize_linear"
    (tmp_path / "q.pdmodel").write_bytes(program.SerializeToString())
    (tmp_path / "q.pdiparams").write_bytes(b"")
    assert lite.is_quantized(lite.read_program(tmp_path / "q.pdmodel"))
    with pytest.raises(EdgekitError, match="NaN"):
        lite.paddle2lite(tmp_path / "q.pdmodel", tmp_path / "q.pdiparams", tmp_path / "q.nb", arch="x86")


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "armv9"}, "Unknown Paddle Lite arch"),
    ({"dst_nb": "model.bin"}, "must end in .nb"),
    ({"model_file": "missing.pdmodel"}, "does not exist"),
    ({"model_file": "inference.json"}, "PIR program"),
])
def test_paddle2lite_checks_its_arguments(tmp_path, kwargs, message):
    call = {"model_file": "model.pdmodel", "params_file": "model.pdiparams", "dst_nb": "model.nb", **kwargs}
    call = {k: (tmp_path / v if k != "arch" else v) for k, v in call.items()}
    (tmp_path / "model.pdmodel").write_bytes(b"")
    with pytest.raises(EdgekitError, match=message):
        lite.paddle2lite(**call)


# ---------------------------------------------------------------- example app

def test_lite_app_is_written_with_its_preprocessing(tmp_path):
    pp = {"resize_short": 256, "crop": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
          "scale": 1 / 255, "interpolation": "bilinear", "channel_order": "RGB", "layout": "NCHW"}
    app = lite.write_lite_app(tmp_path / "app", pp)
    assert sorted(p.name for p in app.iterdir()) == ["CMakeLists.txt", "README.md", "main.cc", "preprocess.txt"]
    lines = dict(line.split(" ", 1) for line in (app / "preprocess.txt").read_text().splitlines()
                 if line and not line.startswith("#"))
    assert lines["resize_short"] == "256" and lines["crop"] == "224"
    assert [float(v) for v in lines["std"].split()] == pp["std"]
    source = (app / "main.cc").read_text()
    for api in ("MobileConfig", "set_model_from_file", "CreatePaddlePredictor"):
        assert api in source
    with pytest.raises(EdgekitError, match="bilinear"):
        lite.preprocess_txt({**pp, "interpolation": "bicubic"})
