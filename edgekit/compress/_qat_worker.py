"""Child process of the QAT pass: FLAGS_enable_pir_api=0 is already set, so the
quantized model is saved as the legacy program Paddle Lite and Paddle Inference read.

Writes into job["out"]: quantized/inference.pdmodel (+ .pdiparams), the
fine-tuned float weights (finetuned.pdparams, the zoo model's own parameter
names) and history.json.
"""

import json
import sys
from pathlib import Path

import numpy as np


def main(job: dict) -> None:
    import paddle
    import paddle.nn.functional as F
    from paddle.quantization import ImperativeQuantAware

    from edgekit.export._legacy_worker import _legacy_safe_sigmoid
    from edgekit.export.paddle import INPUT_NAME

    # SE blocks (EfficientNet) need the same legacy-export patch as edgekit.export.paddle.
    F.sigmoid = _legacy_safe_sigmoid(F.sigmoid)

    from edgekit.training import DecodedImages, fit
    from edgekit.zoo import create_model
    from edgekit.preprocessing import Preprocessing
    from edgekit.zoo.weights import load_weights

    out = Path(job["out"])
    paddle.seed(job["seed"])
    model = create_model(job["model"], num_classes=job["num_classes"])
    load_weights(model, job["weights"])
    # The same tensors stay inside the quantized wrappers, so these keep the fine-tuned float values.
    float_state = model.state_dict()
    # Fake-quantize Conv2D and Linear: weights per channel, activations by moving average, saved as
    # quantize_linear/dequantize_linear pairs (onnx_format), which Paddle Lite's optimizer turns into INT8 kernels.
    quanter = ImperativeQuantAware(quantizable_layer_type=["Conv2D", "Linear"],
                                   weight_quantize_type="channel_wise_abs_max",
                                   activation_quantize_type="moving_average_abs_max", moving_rate=0.9,
                                   onnx_format=True)
    quanter.quantize(model)
    train = DecodedImages(np.load(out / "train_images.npy"), np.load(out / "train_labels.npy"), "--calib")
    result = fit(model, train, preprocessing=Preprocessing.from_dict(job["preprocessing"]), epochs=job["epochs"],
                 batch_size=job["batch_size"], lr=job["lr"], seed=job["seed"], progress=False)
    model.eval()
    paddle.save({k: v for k, v in float_state.items()}, str(out / "finetuned.pdparams"))
    spec = paddle.static.InputSpec([None, 3, job["input_size"], job["input_size"]], "float32", INPUT_NAME)
    quanter.save_quantized_model(model, str(out / "quantized" / "inference"), input_spec=[spec])
    (out / "history.json").write_text(json.dumps([{"epoch": r.epoch, "loss": r.loss, "train_top1": r.train_top1}
                                                  for r in result.history]))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
