"""The classify decoder: activations, top-k order, thresholds and shape checks, with known answers."""

import numpy as np
import pytest

from edge.decoders import build_decoder
from edge.decoders.activations import sigmoid, softmax
from edge.errors import EdgeError
from edge.transform import Transform

IDENTITY = Transform(scale_xy=(1, 1), offset_xy=(0, 0), input_wh=(224, 224), source_wh=(224, 224))


def classify(params, logits, labels=None, name="logits"):
    decoder = build_decoder(dict({"type": "classify"}, **params), labels=labels, input_wh=(224, 224))
    return decoder({name: np.asarray(logits, np.float32)}, IDENTITY)


@pytest.mark.parametrize("params, logits, expected_ids, expected_scores", [
    ({}, [[1, 2, 3]], [2, 1, 0], [0.66524096, 0.24472847, 0.09003057]),
    ({"top_k": 2}, [[1, 2, 3]], [2, 1], [0.66524096, 0.24472847]),
    ({"top_k": 10}, [[1, 2, 3]], [2, 1, 0], [0.66524096, 0.24472847, 0.09003057]),
    ({}, [[1, 3, 3, 0]], [1, 2, 0, 3], [0.4576403, 0.4576403, 0.0619349, 0.0227846]),  # tie: lower id first
    ({}, [[1000, 1001]], [1, 0], [0.7310586, 0.2689414]),                                  # no overflow
    ({}, [[-1000, -1001]], [0, 1], [0.7310586, 0.2689414]),
    ({"activation": "sigmoid"}, [[0, 2, -2]], [1, 0, 2], [0.8807971, 0.5, 0.1192029]),
    ({"activation": "sigmoid"}, [[-1000, 1000]], [1, 0], [1.0, 0.0]),
    ({"activation": "none"}, [[0.1, 0.7, 0.2]], [1, 2, 0], [0.7, 0.2, 0.1]),
    ({"activation": "none", "score_threshold": 0.15}, [[0.1, 0.7, 0.2]], [1, 2], [0.7, 0.2]),
    ({"activation": "none", "score_threshold": 0.2}, [[0.1, 0.7, 0.2]], [1, 2], [0.7, 0.2]),  # >= threshold
    ({"activation": "none", "score_threshold": 0.9}, [[0.1, 0.7, 0.2]], [], []),
    ({}, [[[[1]], [[2]], [[3]]]], [2, 1, 0], [0.66524096, 0.24472847, 0.09003057]),       # (1, C, 1, 1)
    ({"output": "logits", "top_k": 1}, [[5, 1]], [0], [0.98201379]),
])
def test_top_k(params, logits, expected_ids, expected_scores):
    result = classify(params, logits)
    assert result.class_ids.tolist() == expected_ids
    np.testing.assert_allclose(result.scores, expected_scores, rtol=1e-6, atol=1e-7)
    assert result.scores.dtype == np.float32


def test_labels_and_json():
    result = classify({"top_k": 2}, [[0.0, 3.0, 1.0]], labels=["cat", "dog", "bird"])
    assert result.top_label == "dog"
    assert [c["label"] for c in result.to_json()["classes"]] == ["dog", "bird"]


def test_threshold_can_change_after_build():
    decoder = build_decoder({"type": "classify", "activation": "none"}, labels=None, input_wh=(224, 224))
    decoder.score_threshold = 0.5
    assert decoder({"p": np.array([[0.4, 0.6]], np.float32)}, IDENTITY).class_ids.tolist() == [1]
    with pytest.raises(EdgeError, match="score threshold must be a number in"):
        decoder.score_threshold = 1.5


@pytest.mark.parametrize("logits, expected", [
    ([0.0, 0.0], [0.5, 0.5]),
    ([1e4, 0.0, -1e4], [1.0, 0.0, 0.0]),
    ([np.log(1.0), np.log(3.0)], [0.25, 0.75]),
])
def test_softmax(logits, expected):
    np.testing.assert_allclose(softmax(np.array(logits)), expected, atol=1e-12)


@pytest.mark.parametrize("logits, expected", [
    ([0.0, np.log(3.0), -np.log(3.0)], [0.5, 0.75, 0.25]),
    ([800.0, -800.0], [1.0, 0.0]),
])
def test_sigmoid(logits, expected):
    with np.errstate(over="raise"):
        np.testing.assert_allclose(sigmoid(np.array(logits)), expected, atol=1e-12)


def test_check_outputs_adopts_the_single_output():
    decoder = build_decoder({"type": "classify"}, labels=["a", "b"], input_wh=(224, 224))
    assert decoder.output_names == ()
    decoder.check_outputs({"prob": [1, 2]})
    assert decoder.output_names == ("prob",)


@pytest.mark.parametrize("params, labels, shapes", [
    ({}, None, {"logits": [1, 1000]}),
    ({}, ["a", "b", "c"], {"logits": ["N", 3]}),
    ({}, ["a", "b", "c"], {"logits": [1, "classes"]}),   # dynamic: checked on the first frame
    ({}, ["a", "b", "c"], {"logits": [1, 3, 1, 1]}),
    ({"output": "probs"}, ["a", "b"], {"features": [1, 64], "probs": [1, 2]}),
])
def test_check_outputs_accepts(params, labels, shapes):
    decoder = build_decoder(dict({"type": "classify"}, **params), labels=labels, input_wh=(224, 224))
    decoder.check_outputs(shapes)


@pytest.mark.parametrize("params, labels, shapes, message", [
    ({}, ["a", "b", "c"], {"logits": [1, 1000]}, "3 labels but output 'logits' scores 1000 classes"),
    ({}, ["a", "b", "c"], {"logits": [1, 1000]}, "give exactly 1000 labels"),
    ({}, None, {"a": [1, 2], "b": [1, 3]}, "the model has 2 outputs (a, b)"),
    ({}, None, {"a": [1, 2], "b": [1, 3]}, "set decoder.output"),
    ({"output": "probs"}, None, {"logits": [1, 10]}, "no output 'probs' (outputs: logits)"),
    ({}, None, {"logits": [1, 7, 7, 10]}, "one class axis"),
    ({}, None, {"logits": [4, 10]}, "batch of 4"),
    ({}, None, {"logits": [10]}, "(1, classes)"),
])
def test_check_outputs_rejects(params, labels, shapes, message):
    decoder = build_decoder(dict({"type": "classify"}, **params), labels=labels, input_wh=(224, 224),
                            where="net.onnx")
    with pytest.raises(EdgeError) as error:
        decoder.check_outputs(shapes)
    assert message in str(error.value)
    assert str(error.value).startswith("net.onnx | ")


@pytest.mark.parametrize("labels, logits, message", [
    (["a", "b"], [[1, 2, 3]], "2 labels but output 'logits' scores 3 classes"),
    (None, [[1, 2], [3, 4]], "batch of 2"),
])
def test_call_rejects(labels, logits, message):
    with pytest.raises(EdgeError) as error:
        classify({}, logits, labels=labels)
    assert message in str(error.value)
