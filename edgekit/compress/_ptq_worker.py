"""Child process of PaddleSlimRoute.quantize: FLAGS_enable_pir_api=0 is already set.

PaddleSlim's post-training quantization works on the legacy static program;
on Paddle 3.3 it wants `data_loader=` a callable yielding {input_name: batch}.
"""

import json
import sys

import numpy as np


def main(job: dict) -> None:
    import paddle

    paddle.enable_static()
    from paddleslim.quant import quant_post_static

    calibration = np.load(job["calibration"])
    batch_size = job["batch_size"]

    def batches():
        for start in range(0, len(calibration), batch_size):
            yield {job["input_name"]: calibration[start:start + batch_size]}

    quant_post_static(
        paddle.static.Executor(paddle.CPUPlace()), job["model_dir"], job["out_dir"], data_loader=batches,
        model_filename=job["model_filename"], params_filename=job["params_filename"],
        save_model_filename="inference.pdmodel", save_params_filename="inference.pdiparams",
        batch_size=batch_size, batch_nums=-(-len(calibration) // batch_size), algo=job["algo"], onnx_format=True,
        weight_quantize_type="channel_wise_abs_max" if job["per_channel"] else "abs_max",
        skip_tensor_list=job["skip"] or None, optimize_model=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
