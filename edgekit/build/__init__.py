"""`edgekit build`: a zoo model + weights -> a verified bundle for one target.

    from edgekit.build import plan_build, run_build
    plan = plan_build("ResNet50_vd", "onnx", weights="w.pdparams")   # every check, no work
    result = run_build(plan)                                         # the bundle, atomically

Modules: `plan` (inputs resolved and checked), `compression` (the recipe: plan
checks, data, training passes), `run` (the build itself), `steps` (timed,
recorded steps), `parity` (artifact vs source), `manifest` (what the bundle records).
"""

from edgekit.build.plan import RANDOM_INIT, BuildPlan, default_out_dir, plan_build
from edgekit.build.run import BuildResult, run_build

__all__ = ["plan_build", "run_build", "BuildPlan", "BuildResult", "default_out_dir", "RANDOM_INIT"]
