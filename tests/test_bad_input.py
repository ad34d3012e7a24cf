"""Bad input a new user gives, through the real CLI: one paragraph naming what they typed, exit code 2, no
traceback, nothing written. One test per class of mistake found by the outside check (issue 14)."""

from __future__ import annotations

import pickle
import re
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.cli import app

runner = CliRunner()
NOT_UTF8 = "caf\xe9 ok\n".encode("latin-1")  # what a Windows-1252 editor writes


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from edgekit.data.digits import make_digits_dataset

    return make_digits_dataset(tmp_path_factory.mktemp("bad-input-digits"), size=32)


def _fails_naming(argv: list[str], *named: str) -> str:
    result = runner.invoke(app, argv)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for name in named:
        assert name in text, f"{name!r} not named in: {text}"
    return text


def _build(*args: str) -> list[str]:
    return ["build", "SqueezeNet1_1", "--target", "onnx", "--input-size", "32", *args]


@pytest.mark.parametrize("option", ["--labels", "--recipe", "--calib"])
def test_files_that_are_not_utf8_are_named(tmp_path, option):
    bad = tmp_path / "bad file.txt"
    bad.write_bytes(NOT_UTF8)
    extra = ["--recipe", "ptq-int8"] if option == "--calib" else []
    if option == "--recipe":
        bad = bad.rename(tmp_path / "bad recipe.yaml")
    text = _fails_naming(_build(option, str(bad), *extra, "--out", str(tmp_path / "out")), str(bad),
                         "not UTF-8 text")
    assert not (tmp_path / "out").exists()
    assert "0xe9" in text


def test_validate_data_list_that_is_not_utf8(tmp_path, digits):
    bundle = tmp_path / "b"
    assert runner.invoke(app, _build("--out", str(bundle), "--num-classes", "10")).exit_code == 0
    bad = tmp_path / "val list.txt"
    bad.write_bytes(NOT_UTF8)
    _fails_naming(["validate", str(bundle), "--data", str(bad)], f"--data {bad}", "not UTF-8 text")


def test_out_under_a_regular_file(tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    _fails_naming(_build("--out", str(blocker / "bundle")), f"--out {blocker / 'bundle'}", "is a file")


def test_weights_that_are_a_directory(tmp_path):
    _fails_naming(_build("--weights", str(tmp_path)), f"--weights {tmp_path} is a directory")


def test_weights_with_non_numeric_arrays(tmp_path):
    from edgekit.zoo import create_model

    state = OrderedDict((k, np.asarray(v.numpy())) for k, v in create_model("SqueezeNet1_1").state_dict().items())
    first = next(iter(state))
    state[first] = np.empty(state[first].shape, dtype=object)  # names and shapes fit, values are objects
    path = tmp_path / "objects.pdparams"
    path.write_bytes(pickle.dumps(state, protocol=4))
    _fails_naming(_build("--weights", str(path), "--out", str(tmp_path / "out")), str(path), "object")


def test_input_size_the_network_cannot_take_names_input_size(tmp_path):
    text = _fails_naming(["build", "SqueezeNet1_1", "--target", "onnx", "--input-size", "16", "--out",
                          str(tmp_path / "out")], "--input-size", "NaN")
    assert "converter" not in text and not (tmp_path / "out").exists()


def test_override_errors_name_the_flag_not_the_recipe_file(tmp_path, digits):
    text = _fails_naming(_build("--recipe", "ptq-int8", "--calib", str(digits.train_list), "--max-drop", "7"),
                         "--max-drop 7")
    assert "recipes/ptq-int8.yaml" not in text and "passes[0]" not in text
    _fails_naming(_build("--recipe", "ptq-int8", "--calib", str(digits.train_list), "--recipe-set",
                         "ptq.max_dorp=0.1"), "--recipe-set ptq.max_dorp", "max_drop")


def _calib_with_broken(digits, tmp_path: Path, broken: int) -> Path:
    lines = digits.train_list.read_text().splitlines()[:400]
    folder = tmp_path / "calib"
    folder.mkdir()
    out = []
    for i, line in enumerate(lines):
        rel, label = line.rsplit(maxsplit=1)
        target = folder / f"{i}.png"
        if i < broken:
            target.write_bytes(b"not a png")
        else:
            shutil.copyfile(digits.train_list.parent / rel, target)
        out.append(f"{target.name} {label}")
    listing = folder / "list.txt"
    listing.write_text("\n".join(out) + "\n")
    return listing


def test_a_few_unreadable_calibration_images_are_named(tmp_path, digits):
    calib = _calib_with_broken(digits, tmp_path, broken=3)
    # 200 held out + 200 calibration: every image of the 400 is decoded (a PTQ build decodes only those it
    # uses, so with --calib-limit some broken ones might never be read).
    result = runner.invoke(app, _build("--recipe", "ptq-int8", "--calib", str(calib), "--num-classes", "10",
                                       "--max-drop", "1", "--out", str(tmp_path / "out")))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "3 --calib images could not be decoded" in text and "0.png" in text
    # INT8 parity compares the held-out images, and says how many.
    compared = re.search(r"parity vs .* on (\d+) held-out --calib images", text)
    assert compared and int(compared.group(1)) > 1, text


def test_many_unreadable_calibration_images_stop_the_build(tmp_path, digits):
    calib = _calib_with_broken(digits, tmp_path, broken=60)
    _fails_naming(_build("--recipe", "ptq-int8", "--calib", str(calib), "--num-classes", "10", "--out",
                         str(tmp_path / "out")), f"--calib {calib}", "60 of 400 images could not be read")
    assert not (tmp_path / "out").exists()


def test_next_command_quotes_paths_with_spaces(tmp_path):
    out = tmp_path / "my bundles" / "squeeze net"
    result = runner.invoke(app, _build("--out", str(out)))
    assert result.exit_code == 0, result.output
    assert f"next: python '{out}/app/predict.py' IMAGE" in result.output.replace("\n", "")
