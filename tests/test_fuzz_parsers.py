"""Every parser of user input, fed whatever hypothesis makes up: it parses, or it raises an EdgekitError
that names the file (or the value) — never another exception.

Deterministic (derandomize, no example database) so CI sees the same inputs on every run; each test takes
a few seconds. Inference directories are fuzzed too (their program files are user input as well).
"""

from __future__ import annotations

import io
import json
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.build.plan import _read_labels
from edgekit.bundle import MANIFEST, SCHEMA_VERSION, read_manifest, verify_files
from edgekit.compress.recipes import get_recipe, with_overrides
from edgekit.data.datasets import read_list_file
from edgekit.devices import open_device
from edgekit.errors import EdgekitError
from edgekit.targets import get_target
from edgekit.zoo.weights import read_state_dict

FUZZ = settings(derandomize=True, database=None, max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Text that looks like the real thing often enough to get past the first check.
_WORDS = st.sampled_from(["ptq", "qat", "distill", "max_drop", "name", "precision", "passes", "int8", "fp32",
                          "pass", "0.01", "-1", "1e9", "null", "[", "]", "{", "}", ":", "- ", "\n", "  ", "#",
                          "img.png", "0", "7", "é", "\x00", "\t", "'", '"', "²", "٣"])
TEXTS = st.one_of(st.text(max_size=200), st.lists(_WORDS, max_size=40).map("".join))
BLOBS = st.one_of(st.binary(max_size=300), TEXTS.map(lambda t: t.encode("utf-8")),
                  TEXTS.map(lambda t: t.encode("utf-16")))


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user file.txt"

    def write(data: bytes) -> Path:
        path.write_bytes(data)
        return path

    return write


def _parses_or_names(call, named: str):
    try:
        return call()
    except EdgekitError as exc:
        assert named in str(exc) or repr(named) in str(exc), f"the message does not name {named!r}: {exc}"
        assert "Traceback" not in str(exc)
        return None


_LIST_LINES = st.lists(st.tuples(st.sampled_from(["img.png", "a b/c.jpg", "", "x", "é.png", "-"]),
                                 st.sampled_from([" ", "\t", "  ", ""]),
                                 st.sampled_from(["0", "7", "-1", "²", "٣", "1.5", "x", "", "99999999999999999999"]))
                       .map("".join), max_size=6).map(lambda lines: "\n".join(lines).encode())


@FUZZ
@given(data=st.one_of(BLOBS, _LIST_LINES))
def test_list_files(user_file, data):
    path = user_file(data)
    result = _parses_or_names(lambda: read_list_file(path, option="--calib"), str(path))
    if result is not None:
        assert len(result) > 0 and all(isinstance(s.label, int) for s in result.samples)


@FUZZ
@given(data=BLOBS)
def test_label_files(user_file, data):
    path = user_file(data)
    result = _parses_or_names(lambda: _read_labels(path), str(path))
    assert result is None or all(isinstance(name, str) and name for name in result)


_RECIPE_LINES = st.lists(st.sampled_from([
    "name: fuzz", "precision: int8", "precision: fp32", "precision: bf3", "passes:", "  - pass: ptq",
    "  - pass: qat", "  - pass: distill", "    max_drop: 0.01", "    max_drop: 7", "    max_drop: abc",
    "    calibration_images: -3", "    algorithm: entropy", "    teacher: ResNet50", "    epochs: 1",
    "    unknown: 1", "description: x", "passes: 3", "- a", "name: [x", "\t", "  -", ": :"]), max_size=12)


@FUZZ
@given(data=st.one_of(BLOBS, _RECIPE_LINES.map(lambda lines: "\n".join(lines).encode())))
def test_recipe_files(tmp_path, data):
    path = tmp_path / "fuzz recipe.yaml"
    path.write_bytes(data)
    recipe = _parses_or_names(lambda: get_recipe(path), str(path))
    if recipe is not None:
        assert recipe.precision in ("fp32", "fp16", "bf16", "int8")


@FUZZ
@given(key=st.one_of(st.sampled_from(["ptq.max_drop", "ptq.algorithm", "ptq.calibration_images", "ptq.seed",
                                      "ptq.per_channel", "ptq.nope", "qat.epochs", "ptq", ".", "ptq."]),
                     st.text(max_size=20)),
       value=st.one_of(TEXTS, st.floats(allow_nan=True), st.integers()))
def test_recipe_overrides(key, value):
    recipe = get_recipe("ptq-int8")
    flag = f"--recipe-set {key}"
    result = _parses_or_names(lambda: with_overrides(recipe, {key: value}, {key: flag}), flag)
    if result is not None:
        assert result.quantization is not None


@FUZZ
@given(target=st.sampled_from(["onnx", "openvino", "arm-lite", "x86-lite", "paddle"]),
       key=st.one_of(st.sampled_from(["opset", "arch", "int8_eval"]), st.text(max_size=10)), value=TEXTS)
def test_target_options(target, key, value):
    spec = get_target(target)
    result = _parses_or_names(lambda: spec.resolve_options({key: value}), "--option")
    if result is not None:
        assert set(result) == set(spec.options)


def _valid_manifest() -> dict:
    return {"schema": SCHEMA_VERSION, "model": {"name": "SqueezeNet1_1", "num_classes": 10},
            "target": {"name": "onnx", "runtime": "onnxruntime", "precision": "fp32", "format": "onnx"},
            "artifact": {"model_file": "model.onnx"},
            "preprocessing": {"resize_short": 32, "crop": 32, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]},
            "files": {"model.onnx": {"sha256": "0" * 64, "size": 3}}}


_JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                      st.text(max_size=10)),
                            lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                            max_leaves=10)


@st.composite
def mutated_manifests(draw) -> bytes:
    manifest = _valid_manifest()
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(manifest)))
        if isinstance(manifest[section], dict) and manifest[section] and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(manifest[section])))
            manifest[section][key] = draw(_JSON_VALUES)
        elif draw(st.booleans()):
            manifest[section] = draw(_JSON_VALUES)
        else:
            del manifest[section]
    return json.dumps(manifest).encode()


@FUZZ
@given(data=st.one_of(BLOBS, mutated_manifests()))
def test_manifests(tmp_path, data):
    bundle = tmp_path / "fuzz bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / MANIFEST).write_bytes(data)
    manifest = _parses_or_names(lambda: read_manifest(bundle), str(bundle))
    if manifest is not None:
        # The files it lists are not there: a checksum error naming the bundle, nothing else.
        _parses_or_names(lambda: verify_files(bundle, manifest), str(bundle))


def _pickled(obj) -> bytes:
    stream = io.BytesIO()
    pickle.dump(obj, stream, protocol=4)  # what paddle.save writes
    return stream.getvalue()


_STATE_VALUES = st.one_of(
    st.builds(lambda shape: np.zeros(shape, np.float32), st.lists(st.integers(0, 3), max_size=3).map(tuple)),
    st.builds(lambda n: np.array(["x"] * n, dtype=object), st.integers(0, 3)),
    st.builds(lambda n: np.array([(1, 2.0)] * n, dtype=[("a", "i4"), ("b", "f4")]), st.integers(0, 2)),
    st.builds(lambda n, kind: np.zeros(n, dtype=kind), st.integers(0, 3),
              st.sampled_from(["U2", "S3", "M8[s]", "m8[s]", "c8", "V4", "f2", "u1", "?"])),
    st.sampled_from([None, 1, 1.5, "x", b"x", [1, 2], {"a": 1}]))


_VALID_PICKLE = _pickled({"w": np.ones((2, 2), np.float32)})


def _read_weights(path):
    state = _parses_or_names(lambda: read_state_dict(path), str(path))
    if state is not None:
        assert all(isinstance(k, str) and v.dtype.kind in "biuf" for k, v in state.items())


@FUZZ
@given(data=st.one_of(
    BLOBS,
    st.builds(lambda cut: _VALID_PICKLE[:cut], st.integers(0, len(_VALID_PICKLE))),
    st.builds(lambda at, byte: _VALID_PICKLE[:at] + bytes([byte]) + _VALID_PICKLE[at + 1:],
              st.integers(0, len(_VALID_PICKLE) - 1), st.integers(0, 255)),
    st.sampled_from([_pickled(print), _pickled(np.dtype), _pickled([1, 2])])))
def test_restricted_unpickler_on_broken_files(user_file, data):
    _read_weights(user_file(data))


@FUZZ
@given(state=st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), _STATE_VALUES, min_size=1, max_size=3))
def test_restricted_unpickler_on_state_dicts(user_file, state):
    _read_weights(user_file(_pickled(OrderedDict(state))))


@FUZZ
@given(address=st.one_of(
    st.text(max_size=40),
    st.builds("".join, st.lists(st.sampled_from(["ssh://", "adb://", "emu://", "local", "pi", "@", ":", "22",
                                                 "-o", "ProxyCommand=x", "host", "[::1]", "/", " ", "a b",
                                                 "aarch64", "armv7", "%", "?", "#", "-", "99999"]),
                                max_size=6))))
def test_device_urls(address):
    device = _parses_or_names(lambda: open_device(address), "--device")
    if device is not None:
        assert device.address
        close = getattr(getattr(device, "transport", None), "close", None)
        if close:
            close()


_PIR_SKELETON = {"program": {"regions": [{"blocks": [{"ops": [
    {"#": "1.data", "A": [{"N": "name", "AT": {"D": "x"}}], "O": [{"%": 1, "TT": {"D": [[1, "float32"], [-1, 3, 32, 32]]}}]},
    {"#": "1.softmax", "I": [{"%": 1}], "O": [{"%": 2}]},
    {"#": "1.fetch", "I": [{"%": 2}], "A": [{"N": "name", "AT": {"D": "y"}}], "O": [{"%": 3}]}]}]}]}}


@settings(FUZZ, max_examples=80)  # each example parses a protobuf or a JSON program: slower than the rest
@given(form=st.sampled_from(["inference.pdmodel", "inference.json"]),
       data=st.one_of(BLOBS, _JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                      st.builds(lambda value, where: json.dumps(_mutated(_PIR_SKELETON, where, value)).encode(),
                                _JSON_VALUES, st.integers(0, 40))))
def test_inference_directories(tmp_path, form, data):
    from edgekit.export.inference_dir import read_inference_dir

    folder = tmp_path / "fuzz export"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / form).write_bytes(data)
    (folder / "inference.pdiparams").write_bytes(b"")
    _parses_or_names(lambda: read_inference_dir(folder), str(folder))


def _mutated(tree, where: int, value):
    """A deep copy of `tree` with its `where`-th node (depth first, modulo the count) replaced by `value`."""
    nodes = []

    def walk(node, path):
        nodes.append(path)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            walk(child, (*path, key))

    walk(tree, ())
    target = nodes[where % len(nodes)]
    copy = json.loads(json.dumps(tree))
    if not target:
        return value
    parent = copy
    for key in target[:-1]:
        parent = parent[key]
    parent[target[-1]] = value
    return copy
