"""The reference a bundle is compared with: another bundle, or the FP32 Paddle model it was built from.

The reference always runs on the host, on exactly the images the candidate
classified, each model with its own manifest's preprocessing. A `.pdparams`
source with enough work ahead (PADDLE_BUILD_MIN_GFLOP) runs as the Paddle inference
program of its `paddle` target build (PaddleClas's own deployment route, parity-
checked against the weights, kept in the build cache): on a 2-core Zen 3, 73 ms a
ResNet50 image at 224 against the dygraph's 511, after a 15.5 s first build
(benchmarks/validate_throughput.py reference). Below that amount of work the
build would cost more than it saves, and the dygraph runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.bundle import read_manifest, verify_files
from edgekit.errors import EdgekitError
from edgekit.preprocessing import Preprocessing

# Reference work (images x GFLOPs an image at the bundle's size) from which a `.pdparams` source's first paddle
# build (15.5 s for ResNet50 at 224, 0.44 s saved an image) pays for itself: ResNet50 at 224, 37 images; a 32-px
# digits ResNet18, 4,000.
PADDLE_BUILD_MIN_GFLOP = 300.0


@dataclass(frozen=True)
class Reference:
    kind: str  # "bundle" or "paddle-source"
    name: str  # what a report shows
    path: Path
    preprocessing: Preprocessing
    num_classes: int
    runtime: str | None = None  # bundles: their runtime; sources: "paddle" or "paddle-inference"
    output_kind: str = "logits"  # "probabilities" when the network ends in PaddleClas's softmax head
    paddle_build: bool = False  # a .pdparams source run as its cached paddle build (made when first opened)


def reference_bundle(path: str | Path, candidate: dict) -> Reference:
    root = Path(path)
    if not root.is_dir():
        raise EdgekitError(f"--reference {root} is not a bundle directory.")
    manifest = read_manifest(root)
    verify_files(root, manifest)
    classes = manifest["model"]["num_classes"]
    if classes != candidate["model"]["num_classes"]:
        raise EdgekitError(f"--reference {root} has {classes} classes but the bundle has "
                           f"{candidate['model']['num_classes']}; a reference must classify the same classes.")
    from edgekit.targets import adapter_of

    why_not = adapter_of(manifest).why_not_on(manifest)
    if why_not:
        raise EdgekitError(f"--reference {root} cannot run on this host: {why_not}. Use an onnx, openvino, "
                           "paddle or x86-lite build of the same model as the reference.")
    target = manifest["target"]
    return Reference("bundle", f"{manifest['model']['name']} {target['name']} {target['precision']} ({root})",
                     root, Preprocessing.from_dict(manifest["preprocessing"]), classes, target["runtime"],
                     output_kind(manifest))


def source_reference(manifest: dict, images: int | None = None,
                     build_min_gflop: float = PADDLE_BUILD_MIN_GFLOP) -> tuple[Reference | None, str]:
    """The FP32 Paddle model named by the manifest's weights, or None and why not. A `.pdparams` source
    runs as its paddle build when `images` of it are at least `build_min_gflop` of work (None: always);
    that build happens when the reference is opened, so planning stays quick."""
    from edgekit.hashing import file_sha256

    weights = manifest.get("weights", {})
    source = weights.get("source")
    if not source or weights.get("random_init"):
        return None, "the bundle was built from random-init weights, so there is no source model to compare with"
    path = Path(source)
    pp = Preprocessing.from_dict(manifest["preprocessing"])
    classes = manifest["model"]["num_classes"]
    name = manifest["model"]["name"]
    if path.is_dir():
        for program in ("inference.pdmodel", "inference.json"):
            if (path / program).is_file() and (path / "inference.pdiparams").is_file():
                # The bundle was converted from this very program, so it outputs what the bundle outputs.
                return Reference("paddle-source", f"Paddle Inference on {path} (FP32 source)", path / program, pp,
                                 classes, "paddle-inference", output_kind(manifest)), ""
        return None, f"the source inference model {path} named in the manifest is incomplete here"
    if not path.is_file():
        return None, (f"the source weights {path} named in the manifest are not on this machine "
                      "(pass --reference BUNDLE to compare with another build)")
    expected = weights.get("sha256")
    if expected and file_sha256(path) != expected:
        return None, f"the source weights {path} changed since the bundle was built (sha256 differs)"
    size = manifest["input"]["shape"][-1]
    work = None if images is None else images * _gflops_at(name, size)
    return _weights_reference(name, path, pp, classes, paddle_build=work is None or work >= build_min_gflop), ""


def _weights_reference(model_name: str, weights: Path, pp: Preprocessing, classes: int, *, paddle_build: bool,
                       why_dygraph: str = "") -> Reference:
    """A `.pdparams` source as the reference: Paddle Inference on its cached paddle build, or its dygraph."""
    if paddle_build:
        return Reference("paddle-source", f"Paddle Inference on {model_name} FP32 from {weights.name} (the bundle's "
                         "source, as its cached paddle build)", weights, pp, classes, "paddle-inference",
                         paddle_build=True)
    return Reference("paddle-source", f"Paddle {model_name} FP32 with {weights.name} (the bundle's source, dygraph"
                     f"{why_dygraph})", weights, pp, classes, "paddle")


def _gflops_at(model_name: str, size: int) -> float:
    """The card's GFLOPs an image, scaled to `size` (an estimate; unknown counts as heavy)."""
    from edgekit.zoo.cards import get_card

    card = get_card(model_name)
    flops = card.computed_flops_g or card.flops_g
    return float("inf") if not flops else flops * (size / card.crop_size) ** 2


def paddle_build_program(model_name: str, num_classes: int, weights: Path, size: int) -> Path | None:
    """The Paddle inference program of `weights`: the model file of their `paddle` target build (the seeds'
    route, parity-checked against these weights), from the build cache or built into it on first use. None
    when that build fails: then the dygraph model is the reference, slower but the same numbers."""
    from edgekit.build.cache import cache_dir, cached_bundle
    from edgekit.build.plan import plan_build

    try:
        plan = plan_build(model_name, "paddle", weights=weights, num_classes=num_classes, input_size=size,
                          out=cache_dir() / ".unused", force=True)  # cached_bundle writes no --out
        bundle = cached_bundle(plan)
    except (EdgekitError, OSError):  # e.g. a read-only cache
        return None
    return bundle / read_manifest(bundle)["artifact"]["model_file"]


def output_kind(manifest: dict) -> str:
    return manifest.get("output", {}).get("kind", "logits")


def open_reference(reference: Reference, model_name: str, threads: int | None,
                   note: Callable[[str], None] = lambda message: None) -> tuple[Callable[[np.ndarray], Any], Reference]:
    """(a callable batch -> logits for the reference model, the reference that runs: a source whose paddle build
    fails runs as its dygraph, and says so)."""
    from edgekit.targets import source_adapter

    if reference.kind == "bundle":
        from edgekit.runtime import load

        options = {"threads": threads} if threads else {}
        return load(reference.path, verify=False, **options).backend, reference
    if reference.paddle_build:
        note(f"reference: {model_name}'s paddle target build of {reference.path.name} (once; kept in the build "
             "cache)")
        program = paddle_build_program(model_name, reference.num_classes, reference.path, reference.preprocessing.crop)
        if program is not None:
            return source_adapter().open(program, threads=threads), reference
        reference = _weights_reference(model_name, reference.path, reference.preprocessing, reference.num_classes,
                                       paddle_build=False, why_dygraph=": its paddle build failed")
    if reference.path.suffix in (".pdmodel", ".json"):  # an inference program, not training weights
        return source_adapter().open(reference.path, threads=threads), reference
    import paddle

    from edgekit.zoo import create_model
    from edgekit.zoo.weights import load_weights

    with paddle.utils.unique_name.guard():
        model = create_model(model_name, num_classes=reference.num_classes)
    load_weights(model, reference.path)
    model.eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return model(paddle.to_tensor(batch)).numpy()

    return run, reference
