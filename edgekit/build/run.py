"""`edgekit build`, run time: a checked BuildPlan -> a verified bundle, committed atomically.

The recipe's training passes change the Paddle model, the model is exported to
a Paddle program, the target's adapter converts it (INT8: the quantizing pass
drives the adapter's route), parity is measured against the source, and the
app and manifest are written. Nothing is left behind if any step fails.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit.build.compression import load_data, train_passes
from edgekit.build.manifest import build_manifest
from edgekit.build.parity import measure_int8_parity, measure_parity
from edgekit.build.plan import BuildPlan
from edgekit.build.steps import StepRecord, Steps
from edgekit.bundle import atomic_directory, write_manifest
from edgekit.compress.passes import PassContext
from edgekit.export import paddle as paddle_export
from edgekit.export.inference_dir import program_io
from edgekit.export.pir_to_legacy import legacy_from_pir
from edgekit.scratch import scratch_dir, sweep_tmp
from edgekit.targets.base import Conversion

Progress = Callable[[str], None]


@dataclass
class BuildResult:
    path: Path
    manifest: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)


def run_build(plan: BuildPlan, progress: Progress | None = None) -> BuildResult:
    steps = Steps(progress)
    sweep_tmp()  # what killed runs left in TMPDIR (only theirs: the owner is checked)
    adapter = plan.adapter
    adapter.prepare_toolchain(progress)
    work = scratch_dir("edgekit-build")
    try:
        with atomic_directory(plan.out, plan.force) as bundle:
            conversion = Conversion(work=work, bundle=bundle, options=plan.options, step=steps.run)
            # 1. The source: a Paddle inference program (and, from weights, the live model).
            if plan.source:
                source_model, weights_file, weights_sha = None, None, None
                program, params = plan.source.program, plan.source.params
                if not adapter.reads_program(program, plan.precision):
                    # Lite's optimizer and Paddle's quantizer read legacy programs only.
                    program = steps.run("re-export PIR program as legacy", legacy_from_pir, plan.model, plan.source,
                                        plan.num_classes, plan.preprocessing.crop, work / "legacy")
                    params = program.with_suffix(".pdiparams")
            else:
                source_model, weights_file, weights_sha = _source_model(plan, work)
            # The recipe's data, decoded once; distillation / QAT change the source model's weights.
            data = load_data(plan) if plan.compression else None
            compression: dict[str, Any] = {"data": data.to_manifest()} if data else {}
            ctx = None
            if data is not None:
                ctx = PassContext(model=plan.model, num_classes=plan.num_classes, preprocessing=plan.preprocessing,
                                  data=data, work=work, progress=progress, adapter=adapter, conversion=conversion,
                                  source_model=source_model, weights_file=weights_file)
            if ctx is not None and source_model is not None:
                start = time.perf_counter()
                trained = train_passes(plan.recipe, ctx)
                source_model, weights_file = ctx.source_model, ctx.weights_file
                if trained:
                    compression.update(trained)
                    steps.add("+".join(trained), time.perf_counter() - start, weights_file)
            if not plan.inference_model:
                program = steps.run("export paddle program", paddle_export.export_legacy_program, plan.model,
                                    plan.num_classes, weights_file, work / "paddle", plan.preprocessing.crop)
                params = program.with_suffix(".pdiparams")
            # 2. The target's converters (INT8: the quantizing pass, through the target's route).
            # The reference is always the user's own directory, as they gave it.
            reference_program = plan.source.program if plan.source else program
            if plan.precision == "int8":
                model_file, compression["quantization"], outputs = plan.recipe.quantization.quantize(ctx, program)
                steps.add("int8 quantize", compression["quantization"]["seconds"], model_file)
                # 3. Parity, from the outputs accuracy control computed on the held-out images of its own domain.
                parity = measure_int8_parity(plan, model_file, reference_program, source_model, steps, outputs,
                                             data.holdout_images)
            else:
                model_file = adapter.export(conversion, program, params, plan.precision)
                # 3. Parity: the artifact against its source on the same real photos.
                parity = measure_parity(plan, adapter, model_file, reference_program, source_model, steps)
            # 4. What an app needs beside the model.
            app = bundle / "app"
            app.mkdir()
            adapter.write_app(app, plan.preprocessing.to_dict())
            if plan.labels:
                (bundle / "labels.txt").write_text("\n".join(plan.labels) + "\n", encoding="utf-8")
            manifest = build_manifest(plan, model_file.name, weights_sha, parity, steps.records, compression,
                                      io=program_io(program))
            write_manifest(bundle, manifest)
        return BuildResult(plan.out, manifest, steps.records)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _source_model(plan: BuildPlan, work: Path):
    """The Paddle model the artifact must reproduce, the .pdparams it was built from, and their sha256."""
    import paddle

    from edgekit.zoo import create_model
    from edgekit.zoo.weights import load_weights

    paddle.seed(plan.seed)
    model = create_model(plan.model, num_classes=plan.num_classes)
    sha = None
    if plan.weights:
        sha = load_weights(model, plan.weights)
        weights_file = plan.weights
    else:
        weights_file = work / "random-init.pdparams"
        paddle.save(model.state_dict(), str(weights_file))
    model.eval()
    return model, weights_file, sha
