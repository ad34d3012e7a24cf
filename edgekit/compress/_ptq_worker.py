"""Child process of PaddlePTQRoute.quantize: FLAGS_enable_pir_api=0 is already set.

Paddle's own post-training quantization (`paddle.static.quantization`) works on
the legacy static program. The settings are the ones Paddle Lite's INT8 kernels
expect: QDQ-style quantize_linear/dequantize_linear ops (`onnx_format=True`),
weights per channel, activations per tensor, BatchNorm folded first.
"""

import json
import sys

import numpy as np

# The layer types that get INT8 weights; everything else stays float.
QUANTIZABLE_OPS = ["conv2d", "depthwise_conv2d", "conv2d_transpose", "mul", "matmul", "matmul_v2"]
# The share of the activation histogram the `hist` (percentile) estimator keeps.
HIST_PERCENT = 0.9999


def main(job: dict) -> None:
    import paddle

    paddle.enable_static()
    from paddle.static.quantization import PostTrainingQuantization

    calibration = np.load(job["calibration"])
    batch_size = job["batch_size"]

    def batches():
        for start in range(0, len(calibration), batch_size):
            yield {job["input_name"]: calibration[start:start + batch_size]}

    ptq = PostTrainingQuantization(
        executor=paddle.static.Executor(paddle.CPUPlace()), model_dir=job["model_dir"],
        model_filename=job["model_filename"], params_filename=job["params_filename"], data_loader=batches,
        batch_size=batch_size, batch_nums=-(-len(calibration) // batch_size), algo=job["algo"],
        hist_percent=HIST_PERCENT, quantizable_op_type=QUANTIZABLE_OPS, round_type="round",
        activation_quantize_type="range_abs_max",
        weight_quantize_type="channel_wise_abs_max" if job["per_channel"] else "abs_max",
        onnx_format=True, skip_tensor_list=job["skip"] or None, optimize_model=True)
    ptq.quantize()
    ptq.save_quantized_model(job["out_dir"], model_filename="inference.pdmodel",
                             params_filename="inference.pdiparams")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
