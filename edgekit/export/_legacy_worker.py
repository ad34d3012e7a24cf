"""Child process of export_legacy_program: FLAGS_enable_pir_api=0 is already set."""

import json
import sys

import paddle

from edgekit.zoo import create_model
from edgekit.zoo.weights import load_weights


def main(job: dict) -> None:
    model = create_model(job["model"], num_classes=job["num_classes"])
    load_weights(model, job["weights"])
    model.eval()
    spec = paddle.static.InputSpec([None, 3, job["input_size"], job["input_size"]], "float32", job["input_name"])
    paddle.jit.save(model, job["prefix"], input_spec=[spec])


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
