"""`edgekit build MODEL --target fastest`: the fastest artifact for this CPU (or a device) within the
recipe's accuracy budget.

Every candidate (target x precision) is built exactly as `edgekit build` builds it, through the build
cache, and all of them are benched in one interleaved run on the machine the bundle is for. The winner
is the fastest candidate whose accuracy holds:

- an FP32 candidate matches the source (its build fails unless parity holds);
- a bf16 candidate (a default one only where the CPU computes bf16 natively: AVX512_BF16, AMX) passed
  bf16 parity, and with --calib its top-1 where it runs is within max_drop of the FP32 source's on
  those images (nothing is calibrated for bf16, so every image is held out);
- an INT8 candidate passed accuracy control: top-1 on held-out --calib images within the recipe's
  max_drop, and INT8 parity. A candidate whose build fails is rejected, and the reason recorded.

The bundle is the winner's, byte for byte, plus a `selection` record in its manifest: every candidate,
its latency and its ratio to the seed pages' route (Paddle Inference), why it won or lost.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from edgekit import portable
from edgekit.errors import EdgekitError

FASTEST = "fastest"
# The seed pages' route (Paddle Inference with oneDNN): every candidate's speed-up is against it.
BASELINE = "paddle:fp32"
DEFAULT_CANDIDATES = (BASELINE, "onnx:fp32", "openvino:fp32", "onnx:int8", "openvino:int8")
# Added to the defaults where the CPU the bundle is for computes bf16 natively (emulated, it is slower than f32).
BF16_CANDIDATE = "openvino:bf16"
DEFAULT_INT8_RECIPE = "ptq-int8"
# A winner less than this much faster than the runner-up is flagged as a close call.
CLOSE_CALL = 0.05
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    target: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.target}:{self.precision}"

    @property
    def dirname(self) -> str:
        return f"{self.target}-{self.precision}"


@dataclass
class CandidateOutcome:
    """What became of one candidate: built and measured, or why not."""

    candidate: str
    target: str
    precision: str
    status: str  # chosen | slower | rejected | skipped
    reason: str = ""
    runtime: str | None = None
    runtime_precision: str | None = None
    median_ms: float | None = None
    p90_ms: float | None = None
    throughput_ips: float | None = None
    # With peak=True: the share of this runtime's measured compute peak at this precision the model reaches.
    fraction_of_peak: float | None = None
    speedup_vs_baseline: float | None = None
    fp32_top1: float | None = None  # INT8, bf16: on the held-out --calib images
    top1: float | None = None  # the candidate's own, on those images
    top1_drop: float | None = None
    accuracy: str = ""  # what bounds the candidate's accuracy, in words
    bundle: Path | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        del record["bundle"]
        return record


@dataclass
class FastestResult:
    path: Path
    manifest: dict
    outcomes: list[CandidateOutcome]
    bench: Any  # edgekit.bench.BenchReport

    @property
    def chosen(self) -> CandidateOutcome:
        return next(o for o in self.outcomes if o.status == "chosen")


def default_candidates(isa_flags) -> tuple[str, ...]:
    """The candidates for a CPU with these ISA flags when none are named: bf16 only where it is native."""
    if not set(portable.BF16_FLAGS) & set(isa_flags):
        return DEFAULT_CANDIDATES
    at = DEFAULT_CANDIDATES.index("openvino:fp32") + 1
    return (*DEFAULT_CANDIDATES[:at], BF16_CANDIDATE, *DEFAULT_CANDIDATES[at:])


def parse_candidates(candidates: str | Sequence[str] | None, isa_flags=()) -> list[Candidate]:
    """`TARGET:PRECISION` items (comma-separated or a list), checked against the targets; None: the defaults
    for a CPU with `isa_flags`."""
    from edgekit.targets import get_target

    items = candidates.split(",") if isinstance(candidates, str) else list(candidates or
                                                                           default_candidates(isa_flags))
    parsed = []
    for item in (i.strip() for i in items if i.strip()):
        target, _, precision = item.partition(":")
        precision = precision or "fp32"
        if target == FASTEST:
            raise EdgekitError(f"--candidates {item}: a candidate is a target that builds, not {FASTEST}.")
        spec = get_target(target)  # an unknown target: EdgekitError naming the known ones
        if not spec.runs_on_host:
            raise EdgekitError(f"--candidates {item}: {target} bundles do not run on this kind of host, so "
                               "they cannot be benched here; candidates are targets whose `edgekit targets` "
                               "row says 'runs here'.")
        if precision not in spec.precisions:
            raise EdgekitError(f"--candidates {item}: {target} builds {', '.join(spec.precisions)}, not "
                               f"{precision!r}.")
        parsed.append(Candidate(target, precision))
    if not parsed:
        raise EdgekitError("--candidates is empty: give TARGET:PRECISION items, e.g. onnx:fp32,openvino:int8.")
    return list(dict.fromkeys(parsed))


def build_fastest(model: str, *, precision: str = "fp32", candidates: str | Sequence[str] | None = None,
                  weights=None,
                  inference_model=None, out=None, force: bool = False, num_classes: int | None = None,
                  labels=None, options: dict | None = None, input_size: int | None = None, recipe=None,
                  calib=None, calib_limit: int | None = None, max_drop: float | None = None,
                  recipe_overrides: dict | None = None, batch: int = 1, threads: int | None = None,
                  duration: float | None = None, peak: bool = False, device: str = "local",
                  device_python: str | None = None, device_dir: str | None = None, ssh_options: dict | None = None,
                  cache: bool = True,
                  progress: Progress | None = None) -> FastestResult:
    """Build every candidate, bench them interleaved, keep the fastest within the accuracy budget."""
    from edgekit.bench import run as bench
    from edgekit.bundle import atomic_directory, read_manifest, write_manifest
    from edgekit.scratch import scratch_dir
    from edgekit.userfiles import check_creatable

    say = progress or (lambda message: None)
    if precision != "fp32":
        raise EdgekitError(f"--target {FASTEST} chooses the precision itself; drop --precision {precision} "
                           "(name precisions with --candidates TARGET:PRECISION).")
    named = parse_candidates(candidates) if candidates is not None else None
    # The CPU decides the default candidates (bf16) and INT8's weight format; a device is probed only then.
    cpu = (_bench_cpu(device, device_python, device_dir, ssh_options)
           if named is None or any(c.precision == "int8" for c in named) else {})
    chosen_candidates = named or parse_candidates(None, cpu.get("isa_flags", []))
    out_dir = Path(out) if out else Path("dist") / f"{model}-{FASTEST}"
    check_creatable(out_dir.parent, "--out", named=out_dir)
    if out_dir.exists() and not force:
        raise EdgekitError(f"Output directory {out_dir} already exists; pass --force to replace it, "
                           "or choose another --out.")
    if batch < 1:
        raise EdgekitError(f"--bench-batch {batch}: expected a positive batch size to compare latency at.")
    int8_recipe = _int8_recipe(recipe)
    wants_int8 = [c for c in chosen_candidates if c.precision == "int8"]
    outcomes: dict[Candidate, CandidateOutcome] = {}
    if wants_int8 and calib is None:
        if candidates is not None:  # asked for by name: that needs --calib
            raise EdgekitError(f"--candidates {', '.join(c.label for c in wants_int8)}: INT8 needs --calib "
                               "(labeled images to calibrate on and to measure its top-1 against FP32).")
        for c in wants_int8:
            outcomes[c] = _outcome(c, "skipped", "no --calib: INT8 needs labeled images to calibrate and to "
                                                 "measure its accuracy")
    int8_options = (_device_int8_weights(device, cpu, options) if wants_int8 and calib is not None else {})
    work = scratch_dir("edgekit-fastest")
    try:
        plans = _plans(model, [c for c in chosen_candidates if c not in outcomes], work, int8_recipe, int8_options,
                       weights=weights, inference_model=inference_model, num_classes=num_classes, labels=labels,
                       options=options or {}, input_size=input_size, calib=calib, calib_limit=calib_limit,
                       max_drop=max_drop, recipe_overrides=recipe_overrides)
        built = {}
        for index, (candidate, plan) in enumerate(plans.items()):
            say(f"candidate {index + 1}/{len(plans)}: building {candidate.label}")
            try:
                built[candidate] = _build(plan, cache, lambda step, c=candidate: say(f"{c.label}: {step}"))
            except EdgekitError as exc:
                outcomes[candidate] = _outcome(candidate, "rejected", f"build failed: {exc}")
        checked = {}
        # The seeds' route, parity-checked against the source, is the FP32 reference when it was built; else the
        # source, which validate runs as its cached paddle build when the images are worth it (7x its dygraph).
        paddle_fp32 = next((path for c, path in built.items() if c.label == BASELINE), None)
        for candidate in [c for c in built if c.precision == "bf16" and calib is not None]:
            say(f"{candidate.label}: top-1 on --calib against {BASELINE if paddle_fp32 else 'the FP32 source'}")
            checked[candidate] = _bf16_top1(built[candidate], calib, recipe_overrides, int8_recipe, max_drop,
                                            dict(device=device, device_python=device_python, device_dir=device_dir,
                                                 ssh_options=ssh_options, reference=paddle_fp32))
            if checked[candidate]["rejected"]:
                outcomes[candidate] = _outcome(candidate, "rejected",
                                               f"{checked[candidate]['accuracy']}: beyond the budget")
                del built[candidate]
        if not built:
            raise EdgekitError(f"No candidate of {model} could be built: " + "; ".join(
                f"{o.candidate}: {o.reason}" for o in outcomes.values()))
        say(f"benching {len(built)} candidates at batch {batch} (interleaved)")
        report = bench([str(path) for path in built.values()], batch=[batch], threads=threads, duration=duration,
                       peak=peak, device=device, device_python=device_python, device_dir=device_dir,
                       ssh_options=ssh_options, progress=say)
        records = {Path(r.bundle).name: r for r in report.records if r.batch == batch}
        for candidate, path in built.items():
            outcomes[candidate] = _measured(candidate, path, read_manifest(path), records.get(path.name),
                                            checked.get(candidate))
        ordered = [outcomes[c] for c in chosen_candidates]
        winner = choose(ordered)
        selection = _selection_record(ordered, winner, report, batch, device, int8_recipe, max_drop)
        with atomic_directory(out_dir, force) as bundle:
            shutil.copytree(winner.bundle, bundle, dirs_exist_ok=True)
            manifest = {**read_manifest(winner.bundle), "selection": selection}
            write_manifest(bundle, manifest)
        for outcome in ordered:
            outcome.bundle = out_dir if outcome is winner else None
        return FastestResult(out_dir, read_manifest(out_dir), ordered, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def choose(outcomes: Sequence[CandidateOutcome]) -> CandidateOutcome:
    """The fastest measured candidate (lowest median latency); the others are marked slower. Marks in place."""
    measured = [o for o in outcomes if o.status == "measured"]
    if not measured:
        raise EdgekitError("No candidate was measured: " + "; ".join(f"{o.candidate}: {o.reason}" for o in outcomes))
    ranked = sorted(measured, key=lambda o: o.median_ms)
    winner = ranked[0]
    baseline = next((o for o in measured if o.candidate == BASELINE), None)
    for outcome in measured:
        if baseline is not None:
            outcome.speedup_vs_baseline = round(baseline.median_ms / outcome.median_ms, 3)
        if outcome is winner:
            outcome.status, outcome.reason = "chosen", "fastest of the candidates within the accuracy budget"
            if len(ranked) > 1 and ranked[1].median_ms < winner.median_ms * (1 + CLOSE_CALL):
                outcome.reason += (f"; {ranked[1].candidate} is within {CLOSE_CALL:.0%} of it, which a busy or "
                                   "throttled CPU can reverse: bench both again on a quiet machine if it matters")
        else:
            outcome.status = "slower"
            outcome.reason = f"{outcome.median_ms / winner.median_ms:.2f}x the chosen one's latency"
    return winner


def _int8_recipe(recipe) -> str | Path:
    """The recipe INT8 candidates are built with: an INT8 recipe, checked (FP32 candidates take none)."""
    if recipe is None:
        return DEFAULT_INT8_RECIPE
    from edgekit.compress.recipes import get_recipe

    resolved = get_recipe(recipe)
    if resolved.precision != "int8":
        raise EdgekitError(f"--recipe {recipe} makes {resolved.precision} models; with --target {FASTEST} the "
                           "recipe is the one INT8 candidates are built with (e.g. ptq-int8, qat-int8), while "
                           "FP32 candidates are built plainly. Leave --recipe out or give an INT8 recipe.")
    return recipe


def _bench_cpu(device, python, work_dir, ssh_options) -> dict:
    """The CPU the bundle is for (portable.device_info of this host, or of the device, probed once)."""
    if device == "local":
        return portable.device_info()
    from edgekit.bench.on_device import DeviceSession

    session = DeviceSession(device, python, work_dir, ssh_options)
    try:
        return session.probe("onnxruntime")
    finally:
        session.close()


def _device_int8_weights(device, cpu: dict, options) -> dict:
    """On a device, INT8 weights for the device's CPU class (unless -o int8_weights says otherwise)."""
    if device == "local" or (options or {}).get("int8_weights") or "isa_flags" not in cpu:
        return {}
    from edgekit.compress.isa import cpu_class, int8_weights

    return {"int8_weights": int8_weights(cpu_class(cpu.get("machine"), set(cpu["isa_flags"]), cpu.get("cpu")))}


def _plans(model, candidates, work, int8_recipe, int8_options, *, options, **common) -> dict:
    """Every candidate's build plan, all checked before the first build starts."""
    from edgekit.build.plan import plan_build
    from edgekit.targets import get_target

    declared = {key for c in candidates for key in get_target(c.target).options}
    unknown = sorted(set(options) - declared)
    if unknown:
        raise EdgekitError(f"--option {unknown[0]}: none of the candidates' targets "
                           f"({', '.join(sorted({c.target for c in candidates}))}) takes it.")
    calib_keys = ("calib", "calib_limit", "max_drop", "recipe_overrides")
    plans = {}
    for c in candidates:
        spec = get_target(c.target)
        own = {k: v for k, v in options.items() if k in spec.options}
        kwargs = dict(common)
        if c.precision == "int8":
            own = {**{k: v for k, v in int8_options.items() if k in spec.options}, **own}
            kwargs["recipe"] = int8_recipe
        else:
            kwargs = {k: v for k, v in kwargs.items() if k not in calib_keys}
        plans[c] = plan_build(model, c.target, c.precision if c.precision != "int8" else "fp32",
                              out=work / c.dirname, options=own, **kwargs)
    return plans


def _build(plan, cache: bool, progress: Progress) -> Path:
    from edgekit.build.cache import cached_build
    from edgekit.build.run import run_build

    return (cached_build(plan, progress=progress) if cache else run_build(plan, progress=progress)).path


def _outcome(candidate: Candidate, status: str, reason: str) -> CandidateOutcome:
    return CandidateOutcome(candidate.label, candidate.target, candidate.precision, status, reason)


def _bf16_top1(path: Path, calib, overrides, int8_recipe, max_drop, validate_options: dict) -> dict:
    """A bf16 candidate validated where it runs (`validate_options`: the device) on up to the recipe's
    holdout_images --calib images, against the FP32 Paddle model (validate_options["reference"]: the
    paddle:fp32 candidate's bundle, else the source); rejected when its top-1 drops by more than max_drop."""
    from edgekit.compress.recipes import get_recipe, with_overrides
    from edgekit.validate import validate

    quantize = next(p for p in with_overrides(get_recipe(int8_recipe), overrides or {}).passes
                    if hasattr(p, "holdout_images"))
    budget = quantize.max_drop if max_drop is None else max_drop
    record = validate(path, calib, limit=quantize.holdout_images, record=False, **validate_options).record
    reference = record["reference"]
    drop = round(reference["top1"] - record["metrics"]["top1"], 6)
    against = BASELINE if validate_options.get("reference") else "the FP32 source"
    accuracy = (f"bf16 top-1 drop {drop:+.4f} on {reference['images']} --calib images against {against}, "
                f"computed in {record['runtime']['precision']} on {record['device']['kind']} "
                f"({'no max_drop' if budget is None else f'max_drop {budget:g}'})")
    return {"fp32_top1": reference["top1"], "top1": record["metrics"]["top1"], "top1_drop": drop,
            "accuracy": accuracy, "rejected": budget is not None and drop > budget}


def _measured(candidate: Candidate, path: Path, manifest: dict, record, checked: dict | None = None
              ) -> CandidateOutcome:
    outcome = _outcome(candidate, "measured", "")
    outcome.bundle = path
    quant = (manifest.get("compression") or {}).get("quantization")
    if checked:
        outcome.fp32_top1, outcome.top1, outcome.top1_drop = checked["fp32_top1"], checked["top1"], checked["top1_drop"]
        outcome.accuracy = checked["accuracy"]
    elif quant:
        outcome.fp32_top1, outcome.top1 = quant["fp32_top1"], quant["int8_top1"]
        outcome.top1_drop = quant["drop"]
        budget = f"max_drop {quant['max_drop']:g}" if quant.get("max_drop") is not None else "no max_drop"
        outcome.accuracy = (f"INT8 top-1 drop {quant['drop']:+.4f} on {quant['holdout_images']} held-out images "
                            f"({budget})")
    else:
        parity = manifest["parity"]
        within = "" if candidate.precision == "fp32" else f" within the {candidate.precision} tolerance"
        outcome.accuracy = (f"matches the source{within} (parity on "
                            f"{parity.get('compared', len(parity.get('images', [])))} photos in "
                            f"{parity.get('runtime_precision')}, cosine {parity['min_cosine']:.6f})"
                            if parity.get("measured") else f"parity not measured: {parity.get('reason', '')}")
    if record is None:
        outcome.status, outcome.reason = "rejected", "the bench returned no record for it"
        return outcome
    outcome.runtime, outcome.runtime_precision = record.runtime, record.runtime_precision
    outcome.median_ms, outcome.p90_ms = round(record.latency.median_ms, 3), round(record.latency.p90_ms, 3)
    outcome.throughput_ips = round(record.throughput_ips, 2)
    if record.fraction_of_peak is not None:
        outcome.fraction_of_peak = round(record.fraction_of_peak, 4)
    return outcome


def _selection_record(outcomes, winner, report, batch, device, int8_recipe, max_drop) -> dict:
    host = report.host or {}
    return {"chosen": winner.candidate, "criterion": f"lowest median latency at batch {batch} among the "
                                                     "candidates whose build met the accuracy budget",
            "batch": batch, "device": device, "cpu": host.get("cpu_model", ""),
            "isa_flags": host.get("isa_flags", []), "baseline": BASELINE, "int8_recipe": str(int8_recipe),
            "max_drop": max_drop, "bench": report.config, "peaks": report.peaks,
            "physical_peak": report.physical_peak, "warnings": list(report.warnings),
            "candidates": [o.to_dict() for o in outcomes],
            "not_candidates": _not_candidates(host, [o.candidate for o in outcomes])}


def _not_candidates(host: dict, candidates: list[str]) -> list[str]:
    """What a user might expect among the candidates and why it is not there."""
    notes = ["arm-lite: its .nb runs on ARM CPUs, not on this host (bench an arm-lite bundle with --device)",
             "x86-lite: not a default candidate (Paddle Lite's x86 build is how edgekit checks .nb files on x86); "
             "add it with --candidates"]
    if BF16_CANDIDATE not in candidates:
        notes.append(f"{BF16_CANDIDATE}: " + ("not among the named --candidates" if host.get("has_bf16") else
                                              "this CPU has no native bf16 (avx512_bf16 / amx_bf16): OpenVINO would "
                                              "compute it in f32, or emulate it, slower than f32"))
    return notes
