"""Child process of export_legacy_program: FLAGS_enable_pir_api=0 is already set."""

import json
import sys

import paddle
import paddle.nn.functional as F
from paddle.base.layer_helper import LayerHelper


def _legacy_safe_sigmoid(original):
    """Paddle 3.3's F.sigmoid rejects legacy static Variables ("must be Value, but got
    Variable"), which breaks every SE block (EfficientNet, ResNeSt, SENet) in a legacy
    export. In that mode, append the plain `sigmoid` op to the program instead."""

    def sigmoid(x, name=None):
        if paddle.in_dynamic_mode() or not isinstance(x, paddle.static.Variable):
            return original(x, name=name)
        helper = LayerHelper("sigmoid", name=name)
        out = helper.create_variable_for_type_inference(x.dtype)
        helper.append_op(type="sigmoid", inputs={"X": x}, outputs={"Out": out})
        return out

    return sigmoid


def main(job: dict) -> None:
    # This process exists only for the export, so patching paddle here touches nothing else.
    F.sigmoid = _legacy_safe_sigmoid(F.sigmoid)
    from edgekit.export.paddle import with_head
    from edgekit.zoo import create_model
    from edgekit.zoo.weights import load_weights

    model = create_model(job["model"], num_classes=job["num_classes"])
    load_weights(model, job["weights"])
    model.eval()
    spec = paddle.static.InputSpec([None, 3, job["input_size"], job["input_size"]], "float32", job["input_name"])
    paddle.jit.save(with_head(model, job.get("head")), job["prefix"], input_spec=[spec])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
