"""edgekit validate: a trained digits model, validated locally and on a real OpenSSH "device".

The model is ResNet18 at 32x32 whose classifier is fitted (closed-form least
squares) on its own frozen features of the digits train split: a real trained
model in seconds. The ssh device is Debian's sshd on 127.0.0.1 with a
throwaway key, and a separate venv (.peers/device-venv: numpy, OpenCV, the
runtimes, no edgekit) standing in for the device's Python.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit import api
from edgekit.bundle import read_manifest, verify_files
from edgekit.cli import app
from edgekit.errors import EdgekitError

REPO = Path(__file__).resolve().parents[1]
DEVICE_PYTHON = REPO / ".peers" / "device-venv" / "bin" / "python"
SIZE = 32
runner = CliRunner()


def _missing(msg: str):
    """Missing test infrastructure: a failure in CI (scripts/test.sh provides it), a skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


# ---------------------------------------------------------------- shared artifacts (built once per test run)

@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    """A directory both xdist workers see; artifacts in it are built once, under a lock."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "validate-shared"
    root.mkdir(exist_ok=True)
    return root


@contextlib.contextmanager
def built_once(shared: Path, name: str):
    """Yields (path, needs_building); the other worker waits and then reuses the result."""
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = shared / name
        done = shared / f"{name}.done"
        yield path, not done.exists()
        done.touch()


@pytest.fixture(scope="session")
def digits(shared):
    from edgekit.data.digits import make_digits_dataset

    with built_once(shared, "digits") as (path, _):
        return make_digits_dataset(path, size=SIZE)


def _fit_classifier(digits, out: Path) -> Path:
    """ResNet18 with a least-squares classifier on its frozen (random-init) features: ~96% on digits."""
    import dataclasses

    import paddle

    from edgekit.data.datasets import open_dataset
    from edgekit.data.preprocess import decode_image, preprocess
    from edgekit.zoo import create_model
    from edgekit.zoo.cards import get_card

    pp = dataclasses.replace(get_card("ResNet18").preprocessing, resize_short=SIZE, crop=SIZE)
    samples = open_dataset(digits.train_list).samples
    x = np.stack([preprocess(decode_image(s.path), pp) for s in samples])
    y = np.array([s.label for s in samples])
    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        model = create_model("ResNet18", num_classes=10)
    model.eval()
    captured = []
    model.fc.register_forward_pre_hook(lambda layer, inputs: captured.append(inputs[0].numpy()))
    with paddle.no_grad():
        for i in range(0, len(x), 256):
            model(paddle.to_tensor(x[i:i + 256]))
    feats = np.concatenate(captured).astype(np.float64)
    mu, sd = feats.mean(0), feats.std(0) + 1e-6
    a = np.hstack([(feats - mu) / sd, np.ones((len(feats), 1))])
    w = np.linalg.solve(a.T @ a + 10 * np.eye(a.shape[1]), a.T @ (2 * np.eye(10)[y] - 1))
    # Fold the standardisation into the classifier: logits = feats @ W' + b'.
    weight = w[:-1] / sd[:, None]
    bias = w[-1] - (mu / sd) @ w[:-1]
    model.fc.weight.set_value(weight.astype(np.float32))
    model.fc.bias.set_value(bias.astype(np.float32))
    paddle.save(model.state_dict(), str(out))
    return out


@pytest.fixture(scope="session")
def trained_weights(shared, digits) -> Path:
    with built_once(shared, "resnet18-digits.pdparams") as (path, build):
        return _fit_classifier(digits, path) if build else path


def _build(shared, name: str, target: str, weights: Path, digits) -> Path:
    with built_once(shared, name) as (path, build):
        if build:
            api.build("ResNet18", target, weights=weights, out=path, force=True, num_classes=10,
                      labels=digits.labels, input_size=SIZE)
        return path


@pytest.fixture(scope="session")
def onnx_bundle(shared, trained_weights, digits) -> Path:
    return _build(shared, "resnet18-onnx", "onnx", trained_weights, digits)


@pytest.fixture(scope="session")
def openvino_bundle(shared, trained_weights, digits) -> Path:
    return _build(shared, "resnet18-openvino", "openvino", trained_weights, digits)


def copy_bundle(bundle: Path, tmp_path: Path) -> Path:
    """A private copy, for tests that append records or tamper with files."""
    return Path(shutil.copytree(bundle, tmp_path / bundle.name))


# ---------------------------------------------------------------- a real OpenSSH server on 127.0.0.1

@dataclass
class Sshd:
    url: str
    options: dict[str, str]
    process: subprocess.Popen
    work_dir: Path  # the device's work dir (on this machine, since the "device" is 127.0.0.1)

    def sessions(self) -> list[int]:
        """Per-connection sshd processes: the listener's children, read from /proc."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:  # field 4 of /proc/PID/stat: the parent's pid
                    children.append(int(stat.parent.name))
        return children

    def drop_connections(self) -> None:
        for pid in self.sessions():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        sessions = self.sessions()  # found before the listener goes: then they are orphans
        self.process.terminate()
        self.process.wait(timeout=10)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _sshd_binary() -> str | None:
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd",) if os.access(p, os.X_OK)), None)


def start_sshd(root: Path) -> Sshd:
    binary = _sshd_binary()
    if binary is None:
        pytest.skip("OpenSSH server (sshd) is not installed and could not be: scripts/test.sh installs Debian's "
                    "openssh-server when it runs as root with apt-get; the ssh device tests need it.")
    root.mkdir(parents=True, exist_ok=True)
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    shutil.copyfile(root / "client_key.pub", root / "authorized_keys")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (root / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel ERROR
""")
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {(root / 'host_key.pub').read_text()}")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    log = open(root / "sshd.log", "w")
    process = subprocess.Popen([binary, "-D", "-e", "-f", str(root / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited: {(root / 'sshd.log').read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    user = os.environ.get("USER") or __import__("getpass").getuser()
    options = {"IdentityFile": str(root / "client_key"), "UserKnownHostsFile": str(root / "known_hosts"),
               "StrictHostKeyChecking": "yes"}
    return Sshd(f"ssh://{user}@127.0.0.1:{port}", options, process, root / "device")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def device_python() -> str:
    if not DEVICE_PYTHON.is_file():
        _missing(f"{DEVICE_PYTHON} is missing: scripts/test.sh creates this stand-in device Python "
                 "(numpy, OpenCV, onnxruntime, openvino; no edgekit).")
    return str(DEVICE_PYTHON)


def ssh_kwargs(server: Sshd, python: str) -> dict:
    return {"device": server.url, "device_python": python, "device_dir": str(server.work_dir),
            "ssh_options": server.options}


def summary(report) -> dict:
    """The numbers that must not depend on where the bundle ran."""
    r = report.record
    return {"top1": r["metrics"]["top1"], "top5": r["metrics"]["top5"],
            "logits": r["metrics"]["logits_sha256"], "evaluated": r["data"]["evaluated"],
            "failures": [(Path(f["path"]).name, f["reason"]) for f in r["failures"]]}


# ---------------------------------------------------------------- the device agent

def test_agent_preprocessing_is_edgekits_bit_for_bit(digits):
    from edgekit import portable
    from edgekit.data.preprocess import decode_image, preprocess
    from edgekit.data.samples import sample_photos
    from edgekit.preprocessing import Preprocessing
    from edgekit.zoo.cards import get_card

    images = [decode_image(digits.root / "images" / "0007.png"), *sample_photos(3).values()]
    configs = [get_card("ResNet50_vd").preprocessing,
               Preprocessing(resize_short=40, crop=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25),
                             interpolation="bicubic", channel_order="BGR")]
    for pp in configs:
        for image in images:
            assert np.array_equal(portable.preprocess(image, pp.to_dict()), preprocess(image, pp))
    path = str(digits.root / "images" / "0007.png")
    assert np.array_equal(portable.decode(path), decode_image(path))


@pytest.mark.parametrize("name", ["agent.py", "portable.py", "openers.py"])
def test_agent_files_need_nothing_but_numpy_opencv_and_a_runtime(name):
    from edgekit.agent_files import agent_sources

    tree = ast.parse(agent_sources()[name].decode())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "the agent must not use relative imports"
            imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names)
    runtimes = {"numpy", "cv2", "onnxruntime", "openvino", "paddlelite", "paddle"}
    # The agent imports its siblings, openers.py its sibling portable.py (from `edgekit` only when edgekit
    # imports them).
    siblings = {"agent.py": {"portable", "openers", "edgekit"}, "openers.py": {"portable", "edgekit"}}
    allowed = runtimes | siblings.get(name, set())
    assert third_party <= allowed, third_party


# ---------------------------------------------------------------- local validation

def test_local_validation_of_a_trained_bundle(onnx_bundle, digits, tmp_path):
    bundle = copy_bundle(onnx_bundle, tmp_path)
    report = api.validate(bundle, digits.val_list, batch=16)
    r = report.record
    assert report.ok and r["complete"] and r["data"]["evaluated"] == 450 and not r["failures"]
    assert r["metrics"]["top1"] > 0.85  # chance is 0.10
    assert r["metrics"]["top5"] >= r["metrics"]["top1"] and r["metrics"]["images_per_s"] > 0
    # The reference is the Paddle source model (its weights file is here); 450 digits at 32 px are too little
    # work for an export to pay off, so its dygraph runs. The export computes the same.
    ref = r["reference"]
    assert ref["kind"] == "paddle-source" and ref["images"] == 450 and ref["runtime"] == "paddle"
    assert ref["top1_agreement"] == 1.0 and ref["cosine_min"] > 0.9999 and ref["top1"] == r["metrics"]["top1"]
    assert r["device"]["kind"] == "local" and r["device"]["machine"] == platform.machine()
    assert r["runtime"]["name"] == "onnxruntime" and r["runtime"]["version"]
    assert r["published"] is None  # 10 digit classes: the ImageNet figures do not apply
    # Appended to the manifest; edgekit.json is not in `files`, so the bundle still verifies.
    manifest = read_manifest(bundle)
    assert [v["id"] for v in manifest["validations"]] == [r["id"]]
    verify_files(bundle, manifest)


def test_a_pdparams_source_reference_runs_its_cached_paddle_build_and_computes_the_same(
        onnx_bundle, digits, tmp_path, monkeypatch):
    from edgekit import portable
    from edgekit.build.cache import entries
    from edgekit.validate.reference import open_reference, source_reference

    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))  # a cold cache: the build runs here
    manifest = read_manifest(onnx_bundle)
    name = manifest["model"]["name"]
    few, _ = source_reference(manifest, images=10)  # 10 digits at 32 px: not worth a build
    assert few.runtime == "paddle" and not few.paddle_build and few.path.suffix == ".pdparams"
    many, _ = source_reference(manifest, images=10, build_min_gflop=0.0)
    assert many.runtime == "paddle-inference" and many.paddle_build
    assert not (tmp_path / "cache").exists()  # planned only: the build waits until the reference opens
    pp = manifest["preprocessing"]
    paths = [digits.root / line.split()[0] for line in digits.val_list.read_text().splitlines()[:64]]
    batch = np.stack([portable.preprocess(portable.decode(p), pp) for p in paths])
    notes = []
    infer, opened = open_reference(many, name, None, note=notes.append)
    assert opened == many and len(notes) == 1 and "paddle target build" in notes[0]
    ours = np.asarray(infer(batch))
    # The paddle target's build of the same weights, parity-checked, listed and pruned like any cached build.
    [entry] = entries()
    assert (entry.model, entry.target) == ("ResNet18", "paddle")
    paddle_manifest = read_manifest(entry.bundle)
    assert paddle_manifest["parity"]["passed"] and paddle_manifest["weights"]["sha256"] == manifest["weights"]["sha256"]
    stamp = (entry.bundle / paddle_manifest["artifact"]["model_file"]).stat().st_mtime_ns
    open_reference(many, name, None)  # again: from the cache, not rebuilt
    assert [e.key for e in entries()] == [entry.key]
    assert (entry.bundle / paddle_manifest["artifact"]["model_file"]).stat().st_mtime_ns == stamp
    dygraph, opened = open_reference(few, name, None)
    theirs = np.asarray(dygraph(batch))
    assert opened == few and ours.shape == theirs.shape == (64, 10) and (ours.argmax(1) == theirs.argmax(1)).all()
    assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max())


def test_broken_images_are_counted_and_listed_never_dropped(onnx_bundle, digits, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(digits.root / "images", data / "images")
    (data / "images" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    (data / "images" / "empty.png").write_bytes(b"")
    lines = digits.val_list.read_text().splitlines()[:40]
    lines[5:5] = ["images/corrupt.png 3", "images/does-not-exist.png 1", "images/empty.png 2"]
    (data / "list.txt").write_text("\n".join(lines) + "\n")
    report = api.validate(onnx_bundle, data / "list.txt", batch=8, use_reference=False, record=False,
                          report=tmp_path / "report.json")
    r = report.record
    assert r["data"]["images"] == 43 and r["data"]["evaluated"] == 40 and r["data"]["failed"] == 3
    reasons = {Path(f["path"]).name: f["reason"] for f in r["failures"]}
    assert reasons == {"corrupt.png": "cannot be decoded (empty, truncated or not an image)",
                       "does-not-exist.png": "file does not exist",
                       "empty.png": "cannot be decoded (empty, truncated or not an image)"}
    assert json.loads((tmp_path / "report.json").read_text())["failures"] == r["failures"]


def test_label_out_of_range_is_bad_input(onnx_bundle, digits, tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text(f"{digits.root}/images/0000.png 0\n{digits.root}/images/0001.png 12\n")
    with pytest.raises(EdgekitError, match=r"list.txt: 1 labels are outside 0..9"):
        api.validate(onnx_bundle, bad)
    result = runner.invoke(app, ["validate", str(onnx_bundle), "--data", str(bad)])
    assert result.exit_code == 2 and "outside 0..9" in result.output


def test_tampered_bundle_is_refused_before_anything_runs(onnx_bundle, digits, tmp_path, sshd):
    bundle = copy_bundle(onnx_bundle, tmp_path)
    with open(bundle / "model.onnx", "r+b") as f:
        f.seek(500)
        f.write(b"\x00\x01\x02\x03")
    for device in ("local", sshd.url):
        with pytest.raises(EdgekitError, match=r"model.onnx \(checksum mismatch\)"):
            api.validate(bundle, digits.val_list, device=device)


@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "--batch 0 must be a positive integer"),
    (["--limit", "-3"], "--limit -3 must be a positive integer"),
    (["--max-drop", "0.01", "--no-reference"], "--max-drop needs a reference"),
    (["--max-drop", "2"], "--max-drop 2 is a fraction of top-1"),
    (["--device", "ftp://x"], "is not a device address"),
    (["--device", "ssh://"], "is not an ssh address"),
    (["--data", "nowhere.txt"], "--data nowhere.txt does not exist"),
    (["--reference", "nowhere"], "--reference nowhere is not a bundle directory"),
    (["--x86-lite", "nowhere"], "--x86-lite stands in for an arm-lite bundle"),
    (["--report", "no/such/dir/r.json"], "folder no/such/dir does not exist"),
])
def test_bad_input_exits_2_naming_the_option(onnx_bundle, digits, args, message):
    argv = ["validate", str(onnx_bundle), "--data", str(digits.val_list), *args]
    if "--data" in args[:1]:
        argv = ["validate", str(onnx_bundle), *args]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_cli_json_and_max_drop_against_a_reference_bundle(onnx_bundle, openvino_bundle, digits, tmp_path):
    bundle = copy_bundle(openvino_bundle, tmp_path)
    result = runner.invoke(app, ["validate", str(bundle), "--data", str(digits.val_list), "--limit", "96",
                                 "--reference", str(onnx_bundle), "--max-drop", "0.005", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["data"]["selection"] == "first 96 of 450 list lines"
    assert record["reference"]["kind"] == "bundle" and record["reference"]["top1_agreement"] == 1.0
    assert record["passed"] is True and record["runtime"]["precision"] == "f32"
    assert read_manifest(bundle)["validations"][-1]["id"] == record["id"]
    table = runner.invoke(app, ["validate", str(bundle), "--data", str(digits.val_list), "--limit", "32",
                                "--no-reference", "--no-record"])
    assert table.exit_code == 0 and "top-1" in table.output and "openvino" in table.output


def test_max_drop_exceeded_exits_1(onnx_bundle, digits, shared, trained_weights, tmp_path):
    import paddle

    # A damaged build of the same model (classifier scrambled), checked against the good one.
    with built_once(shared, "resnet18-damaged-onnx") as (path, build):
        if build:
            state = paddle.load(str(trained_weights))
            rng = np.random.default_rng(0)
            state["fc.weight"] = paddle.to_tensor(rng.permutation(state["fc.weight"].numpy().T).T.copy())
            paddle.save(state, str(shared / "damaged.pdparams"))
            api.build("ResNet18", "onnx", weights=shared / "damaged.pdparams", out=path, force=True,
                      num_classes=10, input_size=SIZE)
    result = runner.invoke(app, ["validate", str(path), "--data", str(digits.val_list), "--limit", "64",
                                 "--reference", str(onnx_bundle), "--max-drop", "0.02", "--no-record"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "--max-drop" in result.output


def test_class_folders_of_links_with_limit_cover_every_class(onnx_bundle, digits, sshd, device_python, tmp_path):
    from edgekit.data.datasets import open_dataset

    folders = tmp_path / "by-class"
    for sample in open_dataset(digits.val_list).samples:
        (folders / str(sample.label)).mkdir(parents=True, exist_ok=True)
        os.symlink(sample.path, folders / str(sample.label) / f"link-{sample.path.name}")
    local = api.validate(onnx_bundle, folders, limit=50, use_reference=False, record=False)
    r = local.record
    assert r["data"]["selection"] == "50 evenly spaced of 450 images" and r["data"]["evaluated"] == 50
    assert r["metrics"]["top1"] > 0.8
    # Over ssh the links' targets travel (by content), not the links.
    remote = api.validate(onnx_bundle, folders, limit=50, use_reference=False, record=False,
                          **ssh_kwargs(sshd, device_python))
    assert summary(remote) == summary(local)


def test_published_figures_only_for_imagenet_models_with_real_weights():
    from edgekit.validate.core import _published

    manifest = {"model": {"num_classes": 1000, "published": {"top1": 0.791, "top5": 0.944}},
                "weights": {"random_init": False}}
    shown = _published(manifest, 50_000)
    assert shown["top1"] == 0.791 and shown["top5"] == 0.944 and "50,000" in shown["note"]
    assert "measured here on 500 images" in _published(manifest, 500)["note"]
    assert _published({**manifest, "weights": {"random_init": True}}, 50_000) is None
    assert _published({**manifest, "model": {**manifest["model"], "num_classes": 10}}, 50_000) is None


# ---------------------------------------------------------------- over ssh, against a real sshd

@pytest.mark.parametrize("bundle_fixture", ["onnx_bundle", "openvino_bundle"])
def test_ssh_gives_the_same_numbers_as_local(bundle_fixture, request, digits, sshd, device_python, tmp_path):
    bundle = copy_bundle(request.getfixturevalue(bundle_fixture), tmp_path)
    local = api.validate(bundle, digits.val_list, batch=16, use_reference=False)
    notes = []
    with_source = bundle_fixture == "onnx_bundle"  # once: the reference still runs on the host
    remote = api.validate(bundle, digits.val_list, batch=16, use_reference=with_source,
                          **ssh_kwargs(sshd, device_python),
                          progress=lambda phase, done, total, note=None: note and notes.append(note))
    assert summary(remote) == summary(local)
    if with_source:
        ref = remote.record["reference"]
        assert ref["kind"] == "paddle-source" and ref["images"] == 450 and ref["top1_agreement"] == 1.0
    assert remote.record["metrics"]["top1"] > 0.85
    device = remote.record["device"]
    assert device["kind"] == "ssh" and device["address"] == sshd.url and device["machine"] == platform.machine()
    assert remote.record["runtime"] == {**local.record["runtime"], "version": remote.record["runtime"]["version"]}
    assert remote.record["runtime"]["version"] == local.record["runtime"]["version"]
    assert [v["device"]["kind"] for v in read_manifest(bundle)["validations"]] == ["local", "ssh"]
    # The run dir is gone; the store keeps the files, so a second run sends nothing.
    assert list((sshd.work_dir / "runs").iterdir()) == []
    again = api.validate(bundle, digits.val_list, limit=20, use_reference=False, record=False,
                         **ssh_kwargs(sshd, device_python),
                         progress=lambda phase, done, total, note=None: note and notes.append(note))
    model_files = [f for f in read_manifest(bundle)["files"] if not f.startswith("app/")]
    assert again.ok and notes[-1] == f"{20 + len(model_files)} of {20 + len(model_files)} files already on the device"


def test_ssh_reports_broken_images_like_local(onnx_bundle, digits, sshd, device_python, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(200))
    lines = [f"{digits.root}/images/{i:04d}.png {i % 10}" for i in range(0, 100, 3)]
    (data / "list.txt").write_text("\n".join(lines[:10] + ["corrupt.jpg 4", "gone.png 5"] + lines[10:]) + "\n")
    local = api.validate(onnx_bundle, data / "list.txt", batch=4, use_reference=False, record=False)
    remote = api.validate(onnx_bundle, data / "list.txt", batch=4, use_reference=False, record=False,
                          **ssh_kwargs(sshd, device_python))
    assert summary(remote) == summary(local)
    assert remote.record["data"]["failed"] == 2 and remote.record["data"]["evaluated"] == len(lines)


def test_transport_without_a_stdin_stream_pushes_archives_like_adb(onnx_bundle, digits, sshd, device_python,
                                                                    tmp_path, monkeypatch):
    """adb's way of moving files (pushed tar archives, inputs as files), exercised over the real sshd."""
    from edgekit.devices.ssh import SshTransport

    monkeypatch.setattr(SshTransport, "streams_stdin", False)
    kwargs = {**ssh_kwargs(sshd, device_python), "device_dir": str(tmp_path / "fresh-device")}
    remote = api.validate(onnx_bundle, digits.val_list, limit=40, use_reference=False, record=False, **kwargs)
    local = api.validate(onnx_bundle, digits.val_list, limit=40, use_reference=False, record=False)
    assert summary(remote) == summary(local)
    assert len(list((tmp_path / "fresh-device" / "store").iterdir())) >= 40


def _long_list(digits, tmp_path, repeats: int) -> Path:
    """The val split repeated: a run long enough to be cut in the middle."""
    lines = digits.val_list.read_text().splitlines()
    path = tmp_path / "long.txt"
    path.write_text("".join(f"{digits.root}/{line}\n" for _ in range(repeats) for line in lines))
    return path


def test_dropped_connection_is_resumed_once_with_identical_numbers(onnx_bundle, digits, device_python,
                                                                   tmp_path):
    server = start_sshd(tmp_path / "sshd")
    data = _long_list(digits, tmp_path, repeats=2)
    try:
        dropped = []

        def progress(phase, done, total, note=None):
            if phase == "run" and done >= 32 and not dropped:
                dropped.append(done)
                server.drop_connections()

        remote = api.validate(onnx_bundle, data, batch=8, use_reference=False, record=False,
                              progress=progress, **ssh_kwargs(server, device_python))
    finally:
        server.stop()
    local = api.validate(onnx_bundle, data, batch=8, use_reference=False, record=False)
    assert dropped and remote.ok
    assert any(n.startswith("connection dropped after") and "resuming at image" in n
               for n in remote.record["notes"])
    assert summary(remote) == summary(local)  # resumed on a batch boundary: the very same logits


def test_connection_lost_for_good_keeps_partial_results(onnx_bundle, digits, device_python, tmp_path):
    server = start_sshd(tmp_path / "sshd")
    bundle = copy_bundle(onnx_bundle, tmp_path)
    data = _long_list(digits, tmp_path, repeats=4)

    def progress(phase, done, total, note=None):
        if phase == "run" and done >= 64 and server.process.poll() is None:
            server.stop()  # the listener and every session: the device is gone

    report = api.validate(bundle, data, batch=8, use_reference=False, progress=progress,
                          **ssh_kwargs(server, device_python))
    r = report.record
    assert not report.ok and not r["complete"]
    assert "dropped again" in r["partial_reason"]
    assert 64 <= r["data"]["processed"] < 1800 and r["data"]["evaluated"] == r["data"]["processed"]
    assert r["metrics"]["top1"] > 0.85  # what arrived is kept and measured
    recorded = read_manifest(bundle)["validations"][-1]
    assert recorded["complete"] is False and recorded["partial_reason"] == r["partial_reason"]


def test_device_that_lacks_the_runtime_says_what_is_missing(onnx_bundle, digits, sshd, tmp_path):
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    with pytest.raises(EdgekitError) as error:
        api.validate(onnx_bundle, digits.val_list, **ssh_kwargs(sshd, str(bare / "bin" / "python")))
    text = str(error.value)
    assert sshd.url in text and "numpy (pip install numpy)" in text
    assert "cv2 (pip install opencv-python-headless)" in text and "onnxruntime" in text


def test_unreachable_ssh_device_is_a_clear_error(onnx_bundle, digits, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(EdgekitError, match=f"ssh://nobody@127.0.0.1:{port}"):
        api.validate(onnx_bundle, digits.val_list, device=f"ssh://nobody@127.0.0.1:{port}",
                     device_dir=str(tmp_path))


def test_refused_key_is_a_clear_error(onnx_bundle, digits, sshd, device_python, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    kwargs = ssh_kwargs(sshd, device_python)
    kwargs["ssh_options"] = {**sshd.options, "IdentityFile": str(tmp_path / "stranger")}
    with pytest.raises(EdgekitError, match="refused the login.*BatchMode"):
        api.validate(onnx_bundle, digits.val_list, **kwargs)


# ---------------------------------------------------------------- adb (no phone here)

def test_adb_commands():
    from edgekit.devices import open_device

    device = open_device("adb://R58M123ABC", python="/data/data/com.termux/files/usr/bin/python")
    transport = device.transport
    assert transport.command_argv("echo hi") == ["adb", "-s", "R58M123ABC", "shell", "echo hi"]
    assert transport.adb_argv("push", "a", "b") == ["adb", "-s", "R58M123ABC", "push", "a", "b"]
    assert device.base == "/data/local/tmp/edgekit"
    assert device.agent_command("probe", "onnxruntime") == (
        f"/data/data/com.termux/files/usr/bin/python {device.agent_path} probe onnxruntime")
    assert transport.connection_error(1, "error: device 'R58M123ABC' not found") is not None
    assert transport.connection_error(1, "/system/bin/sh: python3: not found") is None
    network = open_device("adb://192.168.1.30:5555").transport
    assert network.serial == "192.168.1.30:5555" and network.address == "adb://192.168.1.30:5555"


def test_adb_missing_is_a_clear_error(onnx_bundle, digits, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no adb on this PATH
    with pytest.raises(EdgekitError, match="needs the Android `adb` tool.*apt install adb"):
        api.validate(onnx_bundle, digits.val_list, device="adb://R58M123ABC")


def test_adb_device_not_listed_is_a_clear_error(onnx_bundle, digits, monkeypatch):
    if shutil.which("adb") is None:
        pytest.skip("adb is not installed and could not be: scripts/test.sh installs Debian's adb package "
                    "when it runs as root with apt-get.")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))  # a private adb server, stopped below
    try:
        with pytest.raises(EdgekitError, match=r"adb://R58M123ABC is not listed by `adb devices` "
                                               r"\(attached: none\)"):
            api.validate(onnx_bundle, digits.val_list, device="adb://R58M123ABC")
    finally:
        subprocess.run(["adb", "kill-server"], capture_output=True, timeout=30)


# ---------------------------------------------------------------- Paddle Lite: arm-lite is refused on x86

@pytest.mark.heavy
def test_arm_lite_is_refused_here_unless_an_x86_lite_build_stands_in(onnx_bundle, trained_weights, digits,
                                                                   tmp_path):
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("checks the refusal on an x86 host")
    arm = api.build("ResNet18", "arm-lite", weights=trained_weights, out=tmp_path / "arm", num_classes=10,
                    labels=digits.labels, input_size=SIZE).path
    with pytest.raises(EdgekitError, match=r"armv8 kernels, which cannot run on this x86_64 host.*--x86-lite"):
        api.validate(arm, digits.val_list)
    x86 = api.build("ResNet18", "x86-lite", weights=trained_weights, out=tmp_path / "x86", num_classes=10,
                    labels=digits.labels, input_size=SIZE).path
    report = api.validate(arm, digits.val_list, x86_lite=x86, limit=128, batch=64, use_reference=False)
    r = report.record
    assert r["stand_in_for"]["bundle"] == str(arm) and r["bundle"]["target"] == "x86-lite"
    assert r["runtime"]["name"] == "paddle-lite" and report.bundle == x86
    assert read_manifest(x86)["validations"][-1]["id"] == r["id"]
    assert read_manifest(arm)["validations"] == []  # the ARM artifact itself was not run
    onnx = api.validate(onnx_bundle, digits.val_list, limit=128, use_reference=False, record=False)
    assert abs(r["metrics"]["top1"] - onnx.record["metrics"]["top1"]) <= 1 / 128
    # A different model's x86 build cannot stand in.
    other = copy_bundle(onnx_bundle, tmp_path)
    with pytest.raises(EdgekitError, match="is built for target onnx, not x86-lite"):
        api.validate(arm, digits.val_list, x86_lite=other)


def test_killed_validate_over_ssh_leaves_no_process_and_a_sound_bundle(onnx_bundle, digits, device_python, sshd,
                                                                       tmp_path):
    """SIGKILL while the device runs: edgekit's ssh processes die at once, the device's agent within a batch,
    the bundle's manifest is intact, and the next run succeeds and sweeps the dead run's ssh folder."""
    from killing import Killable, processes_running, run_edgekit

    bundle = copy_bundle(onnx_bundle, tmp_path)
    data = _long_list(digits, tmp_path, repeats=3)
    args = ["validate", str(bundle), "--data", str(data), "--batch", "8", "--no-reference", "--device", sshd.url,
            "--device-python", device_python, "--device-dir", str(sshd.work_dir),
            *(f"--ssh-option={key}={value}" for key, value in sshd.options.items())]
    command = Killable(args, tmp_path)
    agent_running = lambda: bool(processes_running(f"{sshd.work_dir}/"))  # noqa: E731 (the device's own agent)
    assert command.kill_when(lambda: agent_running() and command.has_child("ssh"), seed=4, spread=1.0), \
        command.output()
    assert command.survivors() == [], "edgekit's ssh processes outlived it"
    deadline = time.monotonic() + 20
    while agent_running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not agent_running(), "the device's agent kept running after edgekit died"
    verify_files(bundle, read_manifest(bundle))
    stale = [p for p in Path("/tmp").glob(f"ek-ssh-ek{command.proc.pid}_*")]
    assert stale, "the killed run's ssh folder should be there to sweep"

    again = run_edgekit(args, command.tmpdir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not any(p.exists() for p in stale)
    assert read_manifest(bundle)["validations"][-1]["complete"]
