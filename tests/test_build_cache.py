"""The build cache: a build whose inputs match an earlier one restores that bundle, byte for byte.

`edgekit build` uses it unless --no-cache; a changed input misses; a damaged entry is rebuilt, not
handed out; `edgekit cache ls` lists entries and `edgekit cache prune` removes them.
"""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from edgekit.bundle import read_manifest, verify_files
from edgekit.cli import app

runner = CliRunner()
MODEL = ["build", "SqueezeNet1_1", "--target", "onnx", "--num-classes", "10", "--input-size", "32"]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(root))
    return root / "builds"


def _build(out, *extra):
    start = time.perf_counter()
    result = runner.invoke(app, [*MODEL, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result, time.perf_counter() - start


def test_second_build_of_the_same_inputs_is_restored_from_the_cache_with_identical_files(cache, tmp_path):
    first, first_s = _build(tmp_path / "a")
    assert "paddle2onnx" in first.output and len(list(cache.iterdir())) == 1
    second, second_s = _build(tmp_path / "b")
    assert "reused cached build" in second.output and "--no-cache rebuilds" in second.output
    a, b = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert a["files"] == b["files"] and a == b, "the cached bundle is the first build, manifest included"
    verify_files(tmp_path / "b", b)
    print(f"\nbuild cache: first build {first_s:.1f} s, cache hit {second_s:.1f} s")
    assert second_s < first_s
    # --no-cache builds afresh and leaves the cache alone.
    third, _ = _build(tmp_path / "c", "--no-cache")
    assert "paddle2onnx" in third.output and len(list(cache.iterdir())) == 1
    # A changed input (here the target option) is another key.
    fourth, _ = _build(tmp_path / "d", "-o", "opset=11")
    assert "reused" not in fourth.output and len(list(cache.iterdir())) == 2
    listed = runner.invoke(app, ["cache", "ls", "--json"])
    entries = json.loads(listed.stdout)
    assert listed.exit_code == 0 and {e["model"] for e in entries} == {"SqueezeNet1_1"} and len(entries) == 2


def test_a_damaged_entry_is_rebuilt_not_reused(cache, tmp_path):
    _build(tmp_path / "a")
    (entry,) = cache.iterdir()
    (entry / "bundle" / "model.onnx").write_bytes(b"tampered")
    again, _ = _build(tmp_path / "b")
    assert "reused" not in again.output and "paddle2onnx" in again.output
    verify_files(tmp_path / "b", read_manifest(tmp_path / "b"))


def test_prune_by_size_and_all_and_its_errors(cache, tmp_path):
    _build(tmp_path / "a")
    _build(tmp_path / "b", "-o", "opset=11")
    assert len(list(cache.iterdir())) == 2
    r = runner.invoke(app, ["cache", "prune"])
    assert r.exit_code == 2 and "--older-than DAYS" in r.output
    r = runner.invoke(app, ["cache", "prune", "--max-size", "lots"])
    assert r.exit_code == 2 and "500M" in r.output
    r = runner.invoke(app, ["cache", "prune", "--older-than", "1"])
    assert r.exit_code == 0 and "removed 0 entries" in r.output  # both were used just now
    r = runner.invoke(app, ["cache", "prune", "--max-size", "1K", "--dry-run", "--json"])
    assert json.loads(r.stdout)["kept"] == 0 and len(list(cache.iterdir())) == 2, "a dry run removes nothing"
    r = runner.invoke(app, ["cache", "prune", "--all"])
    assert r.exit_code == 0 and "removed 2 entries" in r.output and not list(cache.iterdir())
