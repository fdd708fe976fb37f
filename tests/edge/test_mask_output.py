"""Mask images (``--output mask:masks_%05d.png``): class ids or instance numbers per frame pixel, lossless PNG.

Whole runs of ``python -m edge.camera`` on small segmentation models built here (semantic and YOLO-style
instance heads), each PNG read back with ``cv2.IMREAD_UNCHANGED`` and compared with the masks of the same
frame's JSON line decoded by pycocotools; the one-line errors of bad uses; the sink and its image on its own.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

import cv2
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.config import METADATA_KEY, EdgeConfig
from edge.errors import EdgeError
from edge.results import Classification, Detections, Frame, Segmentation
from edge.sinks import FrameRecord, MaskImageSink, check_outputs_for_task, class_image

mask_api = pytest.importorskip("pycocotools.mask")
# pycocotools 2.0.x with numpy 2: a warning inside its decode, not about edge
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]
ASTRONAUT = ROOT / "edge" / "data" / "samples" / "astronaut.jpg"


def decode_rle(rle: Dict[str, Any]) -> np.ndarray:
    return mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def map_from_json(result: Dict[str, Any]) -> np.ndarray:
    """The class image a JSON line's result describes: class ids (semantic), or instance number + 1 with the
    earlier (better) instance winning where masks overlap."""
    width, height = result["size_wh"]
    image = np.zeros((height, width), np.int64)
    if "classes" in result:
        for item in result["classes"]:
            image[decode_rle(item["rle"])] = item["class_id"]
        return image
    for number in range(len(result["instances"]), 0, -1):
        image[decode_rle(result["instances"][number - 1]["rle"])] = number
    return image


# ------------------------------------------------------------------------------------------- models
def _save(path: Path, nodes: List[Any], outputs: Dict[str, Sequence[int]], initializers: List[Any],
          config: Dict[str, Any], size: int = 64) -> Path:
    import onnx

    graph = helper.make_graph(nodes, path.stem,
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
                               for name, shape in outputs.items()], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    config = dict({"edge_config": 1, "name": path.stem,
                   "input": {"name": "image", "shape": [1, 3, size, size], "layout": "NCHW", "dtype": "float32"},
                   "preprocess": {"color": "RGB", "resize": "letterbox", "scale": 1 / 255, "mean": [0, 0, 0],
                                  "std": [1, 1, 1]}, "outputs": list(outputs)}, **config)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, EdgeConfig.from_dict(config).to_json()
    onnx.save(model, str(path))
    return path


def make_colour_segmenter(path: Path, num_classes: int, red: int, blue: int, size: int = 64) -> Path:
    """(1, 3, s, s) RGB in [0, 1] -> (1, C, s/4, s/4) logits: class ``red`` where red clearly exceeds green and
    blue, class ``blue`` where blue does, else class 0 (4x4 average pooled)."""
    weight = np.zeros((num_classes, 3, 1, 1), np.float32)
    bias = np.full(num_classes, -100.0, np.float32)
    bias[0] = 0.0
    weight[red, :, 0, 0], bias[red] = [10.0, -5.0, -5.0], -1.0
    weight[blue, :, 0, 0], bias[blue] = [-5.0, -5.0, 10.0], -1.0
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["logits_full"]),
             helper.make_node("AveragePool", ["logits_full"], ["logits"], kernel_shape=[4, 4], strides=[4, 4])]
    labels = [f"class{k}" for k in range(num_classes)]
    return _save(path, nodes, {"logits": (1, num_classes, size // 4, size // 4)},
                 [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
                 {"task": "segment", "labels": labels, "decoder": {"type": "segment"}}, size)


def make_instance_segmenter(path: Path, boxes_cxcywh: np.ndarray, scores: np.ndarray, coefficients: np.ndarray,
                            protos: np.ndarray) -> Path:
    """A YOLO-style instance segmentation head (1, 4 + 1 + M, N) and prototypes (1, M, 16, 16) whose values are
    constants (the image only enters through a zero): one class, masks = coefficients x prototypes per box."""
    head = np.concatenate([boxes_cxcywh.T, scores[None], coefficients.T]).astype(np.float32)[None]
    nodes = [helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
             helper.make_node("Add", ["head", "nothing"], ["output0"]),
             helper.make_node("Add", ["prototypes", "nothing"], ["protos"])]
    initializers = [numpy_helper.from_array(np.zeros((), np.float32), "zero"),
                    numpy_helper.from_array(head, "head"),
                    numpy_helper.from_array(protos.astype(np.float32)[None], "prototypes")]
    return _save(path, nodes, {"output0": head.shape, "protos": (1,) + protos.shape}, initializers,
                 {"task": "segment", "labels": ["thing"],
                  "decoder": {"type": "yolo", "masks": {"proto_output": "protos", "num_masks": len(protos)}}})


def overlapping_instances(path: Path) -> Path:
    """Three instances: two overlapping whole-box masks (the better one must win the overlap) and one whose
    mask is the left half of the input, inside its box."""
    boxes = np.array([[20, 20, 20, 20], [28, 28, 20, 20], [32, 48, 24, 12]], np.float32)  # IoU(0, 1) = 0.22
    protos = np.ones((2, 16, 16), np.float32)
    protos[1, :, 8:] = -1.0
    return make_instance_segmenter(path, boxes, np.array([0.9, 0.8, 0.6]), np.array([[1, 0], [1, 0], [0, 1]]),
                                   protos)


def many_instances(path: Path, count: int = 260) -> Path:
    """``count`` small boxes on a grid, none overlapping (NMS keeps them all): more than 8 bits can number."""
    columns = 20
    index = np.arange(count)
    boxes = np.stack([2 + 3 * (index % columns), 2.5 + 4 * (index // columns),
                      np.full(count, 2.5), np.full(count, 3.0)], axis=1).astype(np.float32)
    scores = 0.3 + 0.6 * (count - index) / count  # best first, as NMS returns them
    return make_instance_segmenter(path, boxes, scores, np.tile([[1.0, 0.0]], (count, 1)),
                                   np.ones((2, 16, 16), np.float32))


def run_camera(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-m", "edge.camera", "--headless", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, env=env, cwd=str(cwd))


# ------------------------------------------------------------------------------------------- whole runs
@pytest.mark.parametrize("make, dtype, values", [
    (lambda path: make_colour_segmenter(path, 3, red=1, blue=2), np.uint8, {0, 1, 2}),
    (lambda path: make_colour_segmenter(path, 300, red=299, blue=256), np.uint16, {0, 256, 299}),  # > 256 classes
    (overlapping_instances, np.uint8, {0, 1, 2, 3}),
    (many_instances, np.uint16, set(range(261))),  # > 255 instances
], ids=["3 classes", "300 classes", "overlapping instances", "260 instances"])
def test_mask_png_equals_the_masks_of_the_json_line(tmp_path, make, dtype, values):
    model = make(tmp_path / "model.onnx")
    done = run_camera("--model", str(model), "--source", str(ASTRONAUT), "--output",
                      f"mask:{tmp_path / 'masks_%05d.png'}", "--output", "-")
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(text) for text in done.stdout.splitlines()]
    png = cv2.imread(str(tmp_path / "masks_00000.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == dtype and png.shape == cv2.imread(str(ASTRONAUT)).shape[:2] == (512, 512)
    expected = map_from_json(line["result"])
    assert np.array_equal(png, expected)
    assert set(np.unique(png).tolist()) == values
    assert "masks_%05d.png: 1 frames" in done.stderr


def test_overlapping_instances_number_as_the_json_line_and_the_better_one_wins(tmp_path):
    done = run_camera("--model", str(overlapping_instances(tmp_path / "m.onnx")), "--source", str(ASTRONAUT),
                      "--output", f"mask:{tmp_path}/", "--output", "-")
    assert done.returncode == 0, done.stderr
    instances = json.loads(done.stdout)["result"]["instances"]
    assert [item["score"] for item in instances] == [0.9, 0.8, 0.6]
    png = cv2.imread(str(tmp_path / "frame_000000.png"), cv2.IMREAD_UNCHANGED)  # a folder: frame_%06d.png
    # boxes in input pixels x 8 (512 / 64): first 80..240, second 144..304 on both axes; they share 144..240
    assert (png[80:240, 80:240] == 1).all() and (png[240:304, 144:304] == 2).all()
    assert (png[144:240, 240:304] == 2).all() and not (png[144:240, 144:240] == 2).any()
    # the third: box x 160..352, y 336..432, its mask the input's left half (x < 256)
    assert (png[336:432, 160:256] == 3).all() and not (png[:, 256:] == 3).any()
    assert np.count_nonzero(png) == np.count_nonzero(map_from_json(json.loads(done.stdout)["result"]))


def test_a_video_source_writes_one_mask_per_frame_named_by_frame_index(tmp_path):
    model = make_colour_segmenter(tmp_path / "seg.onnx", 3, red=1, blue=2)
    done = run_camera("--model", str(model), "--source", "demo://?seed=1", "--max-frames", "4",
                      "--output", f"mask:{tmp_path / 'm_%03d.png'}", "--output", str(tmp_path / "r.jsonl"))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(text) for text in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == [0, 1, 2, 3]
    for line in lines:
        png = cv2.imread(str(tmp_path / f"m_{line['frame']:03d}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and np.array_equal(png, map_from_json(line["result"]))


@pytest.mark.parametrize("args, message, left", [
    # a detector's boxes make no mask images: refused before any output gets a frame (at the first frame, or
    # before the source opens where the camera app calls check_outputs_for_task: the same line)
    ([], "mask:m_%05d.png | this output writes segmentation masks, but the model's task is 'detect'. "
         "Fix: drop the mask output, or give a segmentation model (task 'segment').", []),
    # one file, a source of several frames: refused before the second frame; both outputs hold the first
    (["--model", "SEG", "--source", "demo://?frames=3", "--output", "mask:one.png"],
     "mask:one.png | a single mask file holds one frame, but the source gives more. "
     "Fix: write a pattern like mask:masks_%05d.png, one file per frame.", ["one.png", "r.jsonl"]),
    (["--model", "SEG", "--output", "mask:m_%05d.jpg"], "mask images are lossless PNG (8 or 16 bits a pixel), "
     "not '.jpg'. Fix: write it like mask:masks_%05d.png.", []),
    (["--model", "SEG", "--output", "mask:"], "'mask:' needs a file pattern after it", []),
    (["--model", "SEG", "--output", "mask:missing/m_%05d.png"], "the folder for the mask images does not exist", []),
    (["--model", "SEG", "--output", "mask:m_%05d.png", "--output", "m_%05d.png"],
     "'mask:m_%05d.png' and 'm_%05d.png' given twice", []),
], ids=["detector", "one file, many frames", "jpeg", "no pattern", "missing folder", "same file twice"])
def test_bad_uses_are_one_line_errors(tmp_path, args, message, left):
    seg = make_colour_segmenter(tmp_path / "seg.onnx", 3, red=1, blue=2)
    args = [str(seg) if arg == "SEG" else arg for arg in args]
    if "--source" not in args:
        args += ["--source", str(ASTRONAUT)]
    if not any(arg.startswith("mask:") for arg in args):
        args += ["--output", "mask:m_%05d.png"]
    done = run_camera(*args, "--output", "r.jsonl", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert sorted(set(os.listdir(tmp_path)) - {"seg.onnx"}) == left
    if "r.jsonl" in left:  # every output holds the same frames
        assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1


def test_one_file_for_one_image_and_existing_files_replaced_as_image_outputs_are(tmp_path):
    model = make_colour_segmenter(tmp_path / "seg.onnx", 3, red=1, blue=2)
    (tmp_path / "one.png").write_bytes(b"old")
    done = run_camera("--model", str(model), "--source", str(ASTRONAUT), "--output", "mask:one.png", "--output", "-",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    png = cv2.imread(str(tmp_path / "one.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(png, map_from_json(json.loads(done.stdout)["result"]))


def test_a_run_with_mask_images_only_never_converts_results_to_json(tmp_path, monkeypatch):
    import edge
    from edge.pipeline import Pipeline
    from edge.sources import open_source

    def no_json(self):
        raise AssertionError("to_json called although no output reads JSON")

    monkeypatch.setattr(Segmentation, "to_json", no_json)
    sink = MaskImageSink(str(tmp_path / "m_%02d.png"))
    with edge.load_model(make_colour_segmenter(tmp_path / "seg.onnx", 3, red=1, blue=2),
                         backend="onnxruntime-cpu") as model, open_source("demo://?frames=3") as source:
        summary = Pipeline(model, source, [sink]).run()
    assert summary.frames == 3 and summary.outputs == {sink.name: 3}
    assert sorted(os.listdir(tmp_path)) == ["m_00.png", "m_01.png", "m_02.png", "seg.onnx"]


# ------------------------------------------------------------------------------------------- the image
def _instances(masks: np.ndarray) -> Segmentation:
    count = len(masks)
    return Segmentation(instances=Detections(np.zeros((count, 4)), np.linspace(0.9, 0.1, count), np.zeros(count)),
                        masks=masks)


def _one_pixel_masks(count: int) -> np.ndarray:
    masks = np.zeros((count, 20, 20), bool)
    masks.reshape(count, -1)[np.arange(count), np.arange(count)] = True  # instance k covers flat pixel k
    return masks


@pytest.mark.parametrize("result, dtype, expected", [
    (Segmentation(np.array([[0, 2], [7, 0]])), np.uint8, [[0, 2], [7, 0]]),
    (Segmentation(np.array([[0, 255]])), np.uint8, [[0, 255]]),
    (Segmentation(np.array([[0, 256]])), np.uint16, [[0, 256]]),
    (Segmentation(np.array([[0, 65535]])), np.uint16, [[0, 65535]]),
    (Segmentation(np.array([[0, 1]]), labels=[str(k) for k in range(257)]), np.uint16, [[0, 1]]),  # one depth a run
    (Segmentation(np.array([[0, 1]]), labels=[str(k) for k in range(256)]), np.uint8, [[0, 1]]),
    (_instances(np.array([[[1, 1, 0]], [[0, 1, 1]]], bool)), np.uint8, [[1, 1, 2]]),  # the better one wins
    (_instances(np.zeros((0, 1, 3), bool)), np.uint8, [[0, 0, 0]]),
], ids=["classes", "255", "256", "65535", "257 labels", "256 labels", "overlap", "no instances"])
def test_class_image_values_and_depth(result, dtype, expected):
    image = class_image(result)
    assert image.dtype == dtype and image.tolist() == expected


@pytest.mark.parametrize("count, dtype", [(255, np.uint8), (256, np.uint16), (400, np.uint16)])
def test_instance_numbers_take_16_bits_beyond_255(count, dtype):
    image = class_image(_instances(_one_pixel_masks(count)))
    assert image.dtype == dtype and image.ravel()[:count].tolist() == list(range(1, count + 1))


@pytest.mark.parametrize("class_map, message", [
    (np.array([[0, 65536]]), r"class ids 0..65536 do not fit a 16-bit mask image"),
    (np.array([[-1, 3]]), r"class ids -1..3 do not fit"),
])
def test_class_ids_beyond_16_bits_are_one_line_errors(class_map, message):
    with pytest.raises(EdgeError, match=message) as info:
        class_image(Segmentation(class_map), "mask:m.png")
    assert str(info.value).startswith("mask:m.png | ") and "Fix:" in str(info.value)


# ------------------------------------------------------------------------------------------- the sink
def _frame(index: int, size_wh=(20, 20)) -> Frame:
    return Frame(np.zeros((size_wh[1], size_wh[0], 3), np.uint8), index, 0.0)


def test_the_sink_writes_16_bit_pngs_losslessly(tmp_path):
    rng = np.random.default_rng(0)
    class_map = rng.integers(0, 60000, (20, 20))
    with MaskImageSink(str(tmp_path / "m_%d.png")) as sink:
        sink.check_result(Segmentation(class_map))
        sink.write(_frame(5), None, FrameRecord(Segmentation(class_map)))
    png = cv2.imread(str(tmp_path / "m_5.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and np.array_equal(png, class_map)
    assert sink.frames_in_output == 1 and repr(sink) == f"MaskImageSink({str(tmp_path / 'm_%d.png')!r})"


@pytest.mark.parametrize("result, task", [
    (Detections([[1, 2, 3, 4]], [0.9], [0]), "detect"),
    (Classification([1], [0.5]), "classify"),
])
def test_the_sink_refuses_other_results_in_one_line(tmp_path, result, task):
    sink = MaskImageSink(str(tmp_path / "m_%d.png"))
    with pytest.raises(EdgeError, match=f"the model's task is '{task}'") as info:
        sink.check_result(result)
    assert "\n" not in str(info.value)
    with pytest.raises(EdgeError, match=f"the model's task is '{task}'"):
        sink.write(_frame(0), None, FrameRecord(result))
    with pytest.raises(TypeError, match="FrameRecord"):  # a caller's bug: the record carries no result
        sink.write(_frame(0), None, {"frame": 0})
    assert os.listdir(tmp_path) == []


def test_one_file_refuses_a_second_frame_before_it_is_written(tmp_path):
    with MaskImageSink(str(tmp_path / "one.png")) as sink:
        sink.preflight()
        sink.write(_frame(0), None, FrameRecord(Segmentation(np.ones((20, 20)))))
        with pytest.raises(EdgeError, match="a single mask file holds one frame"):
            sink.preflight()
    assert sink.frames_in_output == 1 and os.listdir(tmp_path) == ["one.png"]


@pytest.mark.parametrize("task, outputs, message", [
    ("detect", ["-", "out.mp4", "f_%05d.png"], None),
    ("segment", ["mask:m_%05d.png", "-"], None),
    ("detect", ["-", " MASK:m_%05d.png"], "MASK:m_%05d.png | this output writes segmentation masks, but the "
     "model's task is 'detect'. Fix: drop the mask output, or give a segmentation model (task 'segment')."),
    ("keypoints", ["mask:m/"], "mask:m/ | this output writes segmentation masks, but the model's task is 'keypoints'"),
    ("classify", ["mask:m.png"], "mask:m.png | this output writes segmentation masks, but the model's task is "
     "'classify'"),
])
def test_check_outputs_for_task_before_the_source_opens(task, outputs, message):
    if message is None:
        check_outputs_for_task(outputs, task)
        return
    with pytest.raises(EdgeError) as info:
        check_outputs_for_task(outputs, task)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
