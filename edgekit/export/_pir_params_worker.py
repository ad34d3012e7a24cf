"""Child process of pir_to_legacy.zoo_weights_from_pir, in Paddle 3's default PIR mode (inference.json loads).

Pairs the directory's parameters with the zoo network's by the order the two
programs first read them (the zoo network is traced here, with the same head),
checks every shape, and writes the zoo network's state dict.
"""

import json
import sys
from pathlib import Path

import numpy as np
from edgekit.scratch import temporary_dir


def main(job: dict) -> None:
    import paddle

    from edgekit.export.inference_dir import pir_parameters_in_use_order
    from edgekit.export.paddle import with_head
    from edgekit.zoo import create_model

    theirs = pir_parameters_in_use_order(Path(job["program"]))
    with paddle.utils.unique_name.guard():
        model = create_model(job["model"], num_classes=job["num_classes"])
    model.eval()
    key_of = {p.name: key for key, p in model.state_dict().items()}
    with temporary_dir("edgekit-pir-params") as tmp:
        spec = paddle.static.InputSpec(job["input_shape"], "float32", "x")
        paddle.jit.save(with_head(model, job["head"]), f"{tmp}/zoo", input_spec=[spec])
        ours = pir_parameters_in_use_order(Path(f"{tmp}/zoo.json"))
    report = {"theirs": len(theirs), "ours": len(ours), "misfits": []}
    for index, ((their_name, their_shape), (our_name, our_shape)) in enumerate(zip(theirs, ours)):
        if their_shape != our_shape:
            report["misfits"].append([index, their_name, list(their_shape), key_of.get(our_name, our_name),
                                      list(our_shape)])
    if len(theirs) == len(ours) and not report["misfits"]:
        paddle.enable_static()
        executor = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            paddle.static.load_inference_model(job["prefix"], executor)
            state = {key_of[our]: np.array(scope.find_var(their).get_tensor())
                     for (their, _), (our, _) in zip(theirs, ours)}
        paddle.disable_static()
        paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, job["out"])
    Path(job["report"]).write_text(json.dumps(report))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
