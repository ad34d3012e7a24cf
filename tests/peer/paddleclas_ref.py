"""Run PaddleClas 2.6.0 (the ground truth) in its own process.

Usage:
  python paddleclas_ref.py spec OUT.json NAME...        state-dict names and shapes
  python paddleclas_ref.py logits OUTDIR NAME SIZE SEED  weights + input + logits
  python paddleclas_ref.py export OUTDIR NAME SIZE SEED CLASSES HEAD
                                                        an inference directory + input + scores

PaddleClas modules give their parameters fixed names, so real models are built
one per process; `spec` builds lazily (no weights allocated) inside a fresh
unique-name scope per model, which is safe for many models in one process.
"""

import json
import os
import sys

os.environ.setdefault("FLAGS_enable_pir_api", "1")


def _import_backbones():
    peer = os.environ["EDGEKIT_PADDLECLAS_PEER"]
    sys.path.insert(0, os.path.join(peer, "paddleclas"))
    from ppcls.utils import logger

    logger.init_logger()
    import ppcls.arch.backbone as backbones

    return backbones


def spec(out_path, names):
    import paddle

    backbones = _import_backbones()
    result = {}
    for name in names:
        with paddle.utils.unique_name.guard(), paddle.LazyGuard():
            net = getattr(backbones, name)()
        result[name] = {k: list(v.shape) for k, v in net.state_dict().items()}
    with open(out_path, "w") as f:
        json.dump(result, f)


def randomize(net, seed):
    """Random weights including BatchNorm statistics, so a wrong BN wiring shows."""
    import numpy as np
    import paddle

    rng = np.random.default_rng(seed)
    state = {}
    for key, value in net.state_dict().items():
        shape = value.shape
        if key.endswith(("_variance", "running_var")):
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.endswith(("_mean", "running_mean")):
            arr = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1 and ("bn" in key or "norm" in key or key.endswith("scale")):
            arr = rng.uniform(0.5, 1.5, shape) if key.endswith(("weight", "scale")) else rng.normal(0, 0.1, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else max(1, shape[0])
            if len(shape) == 2:  # paddle Linear weight is [in, out]
                fan_in = shape[0]
            arr = rng.normal(0.0, (1.0 / fan_in) ** 0.5, shape)
        state[key] = paddle.to_tensor(arr.astype(value.numpy().dtype))
    net.set_state_dict(state)


def logits(out_dir, name, size, seed):
    import numpy as np
    import paddle

    paddle.seed(seed)
    backbones = _import_backbones()
    net = getattr(backbones, name)()
    randomize(net, seed)
    net.eval()
    x = np.random.default_rng(seed + 1).normal(0, 1, (2, 3, size, size)).astype("float32")
    with paddle.no_grad():
        y = net(paddle.to_tensor(x)).numpy()
    os.makedirs(out_dir, exist_ok=True)
    paddle.save(net.state_dict(), os.path.join(out_dir, "weights.pdparams"))
    np.save(os.path.join(out_dir, "input.npy"), x)
    np.save(os.path.join(out_dir, "logits.npy"), y)


def export(out_dir, name, size, seed, classes, head):
    """What PaddleClas's tools/export_model.py writes (its engine is not in the pip package, so its steps
    are repeated here): ExportModel = the backbone + `out_act` (nn.Softmax(axis=-1) when
    infer_add_softmax, the default), `paddle.jit.to_static` with an unnamed InputSpec [None, 3, H, W],
    then `paddle.jit.save`. FLAGS_enable_pir_api=0 in the environment gives the legacy .pdmodel form."""
    import numpy as np
    import paddle

    paddle.seed(seed)
    backbones = _import_backbones()
    net = getattr(backbones, name)(class_num=classes)
    randomize(net, seed)

    class ExportModel(paddle.nn.Layer):
        def __init__(self, base_model):
            super().__init__()
            self.base_model = base_model
            self.out_act = paddle.nn.Softmax(axis=-1) if head == "softmax" else None

        def forward(self, x):
            x = self.base_model(x)
            return self.out_act(x) if self.out_act is not None else x

    model = ExportModel(net)
    model.eval()
    x = np.random.default_rng(seed + 1).normal(0, 1, (2, 3, size, size)).astype("float32")
    with paddle.no_grad():
        y = model(paddle.to_tensor(x)).numpy()
    static = paddle.jit.to_static(model, input_spec=[paddle.static.InputSpec([None, 3, size, size], "float32")])
    paddle.jit.save(static, os.path.join(out_dir, "inference"))
    np.save(os.path.join(out_dir, "..", "input.npy"), x)
    np.save(os.path.join(out_dir, "..", "scores.npy"), y)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "spec":
        spec(sys.argv[2], sys.argv[3:])
    elif mode == "logits":
        logits(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif mode == "export":
        export(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7])
    else:
        raise SystemExit(f"unknown mode {mode}")
