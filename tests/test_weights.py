"""Loading .pdparams never runs code from the file; mismatches name the parameters."""

import pickle

import numpy as np
import paddle
import pytest

from edgekit.errors import EdgekitError
from edgekit.zoo.weights import check_state_dict, load_weights, read_state_dict


class _RunsCodeOnLoad:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        # On a plain pickle.load this would create the marker file.
        return (open, (self.marker, "w"))


def test_crafted_pdparams_is_refused_and_code_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(pickle.dumps({"fc.weight": np.zeros((2, 2), "float32"), "x": _RunsCodeOnLoad(str(marker))}))
    with pytest.raises(EdgekitError) as err:
        read_state_dict(evil)
    assert str(evil) in str(err.value) and ".open" in str(err.value)
    assert not marker.exists()
    # The same bytes really would run code under plain pickle: the test is meaningful.
    pickle.loads(evil.read_bytes())
    assert marker.exists()


def test_paddle_saved_state_dict_round_trips(tmp_path):
    net = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4))
    path = tmp_path / "w.pdparams"
    paddle.save(net.state_dict(), str(path))
    other = paddle.nn.Sequential(paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4))
    sha = load_weights(other, path)
    assert len(sha) == 64
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), other.state_dict()[key].numpy())


def test_truncated_file_gets_a_clear_error(tmp_path):
    net = paddle.nn.Linear(4, 3)
    path = tmp_path / "w.pdparams"
    paddle.save(net.state_dict(), str(path))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(EdgekitError, match="truncated"):
        read_state_dict(path)


def test_mismatch_lists_offending_parameters():
    net = paddle.nn.Sequential(paddle.nn.Linear(4, 3), paddle.nn.Linear(3, 2))
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    state["1.weight"] = np.zeros((3, 5), "float32")
    del state["0.bias"]
    state["extra.weight"] = np.zeros(1, "float32")
    with pytest.raises(EdgekitError) as err:
        check_state_dict(net, state, "w.pdparams")
    text = str(err.value)
    assert "0.bias" in text and "extra.weight" in text and "1.weight (file (3, 5), model (3, 2))" in text
