"""Fill the Python example app for a bundle's runtime."""

from __future__ import annotations

from importlib import resources

_RUNNERS = {
    "onnxruntime": ("onnxruntime", '''def make_runner(model_file):
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]'''),
    "openvino": ("openvino", '''def make_runner(model_file):
    import openvino as ov

    compiled = ov.Core().compile_model(str(model_file), "CPU")
    return lambda batch: compiled(batch)[0]'''),
    "paddle-inference": ("paddlepaddle", '''def make_runner(model_file):
    from paddle import inference

    config = inference.Config(str(model_file), str(model_file.with_suffix(".pdiparams")))
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    x = predictor.get_input_handle(predictor.get_input_names()[0])
    y = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(batch):
        x.reshape(list(batch.shape))
        x.copy_from_cpu(batch)
        predictor.run()
        return y.copy_to_cpu()

    return run'''),
}


def python_app(runtime: str) -> str:
    package, runner = _RUNNERS[runtime]
    template = resources.files("edgekit.apps").joinpath("predict_py.tmpl").read_text()
    return template.format(runtime=runtime, runtime_package=package, runner=runner)
