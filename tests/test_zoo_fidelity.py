"""PaddleClas 2.6.0 is the ground truth: same state dict, same function."""

import numpy as np
import paddle
import pytest

from edgekit.zoo import create_model, get_entry, list_models
from edgekit.zoo.weights import load_weights

# The smallest model of each family (and each distinct code path inside a
# family) is compared logit for logit; the rest share its code.
LOGIT_CASES = [
    ("ResNet18", 64),
    ("ResNet50_vd", 64),
    ("ResNet50_vc", 64),
    ("ResNeXt50_32x4d", 64),
    ("ResNeXt50_vd_32x4d", 64),
    ("ResNeXt101_32x8d_wsl", 64),
    ("ResNeSt50_fast_1s1x64d", 64),
    ("ResNeSt50", 64),
    ("EfficientNetB0_small", 224),
    ("EfficientNetB0", 224),
    ("AlexNet", 224),
    ("SqueezeNet1_0", 64),
    ("SqueezeNet1_1", 64),
    ("DarkNet53", 64),
    ("SENet154_vd", 64),
]


@pytest.mark.parametrize("name", list_models())
def test_state_dict_matches_paddleclas(name, peer_spec):
    reference = peer_spec[get_entry(name).paddleclas_name]
    with paddle.utils.unique_name.guard(), paddle.LazyGuard():
        model = create_model(name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(reference) - set(ours))
    extra = sorted(set(ours) - set(reference))
    assert not missing, f"{len(missing)} PaddleClas entries have no edgekit parameter: {missing[:8]}"
    assert not extra, f"{len(extra)} edgekit parameters are not in PaddleClas: {extra[:8]}"
    wrong = {k: (reference[k], ours[k]) for k in reference if reference[k] != ours[k]}
    assert not wrong, f"shape mismatches (paddleclas, edgekit): {dict(list(wrong.items())[:8])}"


def test_logit_cases_cover_every_family():
    families = {get_entry(n).family for n in list_models()}
    covered = {get_entry(n).family for n, _ in LOGIT_CASES}
    assert families <= covered


@pytest.mark.parametrize("name,size", LOGIT_CASES)
def test_logits_match_paddleclas(name, size, peer_logits):
    ref = peer_logits(get_entry(name).paddleclas_name, size)
    model = create_model(name)
    load_weights(model, ref / "weights.pdparams")
    model.eval()
    with paddle.no_grad():
        ours = model(paddle.to_tensor(np.load(ref / "input.npy"))).numpy()
    theirs = np.load(ref / "logits.npy")
    assert ours.shape == theirs.shape
    scale = max(1.0, float(np.abs(theirs).max()))
    assert float(np.abs(ours - theirs).max()) / scale < 2e-5
