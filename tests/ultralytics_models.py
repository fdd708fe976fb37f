"""YOLO models exported by Ultralytics' own exporter, for tests that compare edge with Ultralytics' predictor.

Built from yaml with seeded random weights (no download). Plain random initialisation gives a
degenerate head (activations vanish through the backbone: every box the same, every score ~1e-4),
so the batch-norm statistics are re-estimated on the sample images and the class bias is set to make a
few dozen boxes score above a low threshold: a model with varied boxes, classes and overlaps.
Ultralytics is AGPL-3.0: used here only as the reference, never in ``edge``.
"""

import os
import shutil
from pathlib import Path
from typing import Tuple, Union

import numpy as np

CLASS_BIAS = -6.0


def use_offline_ultralytics(config_dir: Path) -> None:
    """Ultralytics without network or writes to the home folder (call before importing it)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))


def _calibration_batch(height: int, width: int):  # -> torch.Tensor (N, 3, height, width), RGB in [0, 1]
    import cv2
    import torch

    from edge.samples import SAMPLE_NAMES, load_sample

    images = [cv2.resize(load_sample(name), (width, height))[:, :, ::-1] for name in SAMPLE_NAMES]
    images += [image[:, ::-1] for image in images]  # mirrored: six images
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(images)))
    return batch.permute(0, 3, 1, 2).float() / 255


def export_yolo(folder: Path, arch: str, *, nms: bool = False, imgsz: Union[int, Tuple[int, int]] = 320) -> Path:
    """``folder/<arch>[_nms]_<imgsz>.onnx`` exported by Ultralytics (reused when already there).

    arch: "yolov8n", "yolo11n", an end-to-end "yolov10n" / "yolo26n", a classifier "yolo11n-cls", instance
    segmentation "yolo11n-seg" / "yolov8n-seg" or pose "yolo11n-pose" / "yolov8n-pose" (an Ultralytics model
    yaml name without ".yaml"). imgsz: the square size, or (height, width).
    """
    folder.mkdir(parents=True, exist_ok=True)
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    size = str(height) if height == width else f"{height}x{width}"
    target = folder / f"{arch}{'_nms' if nms else ''}_{size}.onnx"
    if target.exists():
        return target
    use_offline_ultralytics(folder / "ultralytics_config")
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.modules.head import Detect

    torch.manual_seed(0)
    model = YOLO(f"{arch}.yaml")
    net = model.model
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    net.train()
    with torch.no_grad():
        net(_calibration_batch(height, width))
        net.eval()
        head = next((m for m in net.modules() if isinstance(m, Detect)), None)  # None: a classifier
        branches = [] if head is None else list(head.cv3) + list(getattr(head, "one2one_cv3", None) or [])
        for branch in branches:  # end2end heads: the one-to-one branch too
            branch[-1].bias.fill_(CLASS_BIAS)
    return _export(model, target, [height, width], nms=nms)


def _export(model, target: Path, imgsz_hw, **options) -> Path:
    """Ultralytics' ONNX export of ``model`` moved to ``target``."""
    work = target.parent / f"work_{target.stem}"
    work.mkdir(exist_ok=True)
    cwd = os.getcwd()
    os.chdir(work)  # the exporter writes next to the (relative) yaml name
    try:
        exported = Path(model.export(format="onnx", imgsz=list(imgsz_hw), verbose=False, **options))
    finally:
        os.chdir(cwd)
    shutil.move(str(work / exported.name if not exported.is_absolute() else exported), str(target))
    return target


def export_rtdetr(folder: Path, arch: str = "rtdetr-l", imgsz: int = 320) -> Path:
    """``folder/<arch>_<imgsz>.onnx``: an RT-DETR exported by Ultralytics (reused when already there).

    Random weights as :func:`export_yolo` (batch-norm statistics from the sample images), with the
    class-score heads re-drawn small so scores spread around 0.2-0.3 instead of all being equal.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{arch}_{imgsz}.onnx"
    if target.exists():
        return target
    use_offline_ultralytics(folder / "ultralytics_config")
    import torch
    from ultralytics import RTDETR
    from ultralytics.nn.modules.head import RTDETRDecoder

    torch.manual_seed(0)
    model = RTDETR(f"{arch}.yaml")
    net = model.model
    net.eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
            module.train()  # only the batch norms: the decoder's training path needs targets
    with torch.no_grad():
        net(_calibration_batch(imgsz, imgsz))
        net.eval()
        head = next(m for m in net.modules() if isinstance(m, RTDETRDecoder))
        for linear in list(head.dec_score_head) + [head.enc_score_head]:
            linear.weight.normal_(0, 0.02)
            linear.bias.fill_(-2.0)
    return _export(model, target, [imgsz, imgsz])


def ultralytics_metadata(num_classes: int = 3, task: str = "detect", imgsz: Union[int, str] = 32, **extra: str):
    """metadata_props as Ultralytics' exporter writes them (8.4), for ``num_classes`` classes.

    imgsz: the square size, or the metadata text itself; extra: other keys, as text.
    """
    names = {i: f"class{i}" for i in range(num_classes)}
    args = {"batch": 1, "nms": extra.pop("nms", "False") == "True", "dynamic": False}
    meta = {"description": "Ultralytics YOLO11n model", "author": "Ultralytics", "version": "8.4.190",
            "license": "AGPL-3.0 License (https://ultralytics.com/license)", "stride": "32", "task": task,
            "batch": "1", "imgsz": imgsz if isinstance(imgsz, str) else str([imgsz, imgsz]),
            "names": repr(names), "args": repr(args), "channels": "3", "end2end": "False"}
    meta.update(extra)
    return meta


def make_fake_ultralytics(path: Path, metadata, output_shape=(1, 7, 16), imgsz: int = 32) -> Path:
    """A tiny ONNX with Ultralytics' input/output names and metadata: images (1, 3, s, s) -> output0.

    A strided convolution then a reshape makes ``output_shape`` (any 3-D shape whose size divides
    into (s/8)^2 positions); values are arbitrary but deterministic.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    batch, rows, cols = output_shape
    cells = (imgsz // 8) ** 2
    channels = rows * cols // cells
    weight = np.random.default_rng(0).normal(0, 0.1, (channels, 3, 8, 8)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["images", "w"], ["features"], strides=[8, 8], kernel_shape=[8, 8]),
             helper.make_node("Reshape", ["features", "shape"], ["output0"])]
    graph = helper.make_graph(
        nodes, "fake_ultralytics",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, imgsz, imgsz])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output_shape))],
        [numpy_helper.from_array(weight, "w"),
         numpy_helper.from_array(np.array([batch, rows, cols], np.int64), "shape")])
    # opset 13: ONNX Runtime 1.10 (the newest for Python 3.6 / JetPack 4.6) reads up to 15
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
