"""Builders of real detector and classifier architectures for the export tests (``file.py:callable`` sources).

No weights can be downloaded here, so the models are seeded random inits made to behave like
trained ones where it matters for the tests: the backbones' batch-norm statistics are measured on
a few random images (a random MobileNetV3 in eval mode otherwise shrinks every feature to ~1e-14,
and every detection ties at score 1/91), so scores spread and detections are distinct.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile


def _calibrate_batch_norm(detector) -> None:
    """Running mean/var of every backbone BatchNorm from 4 seeded random images, fed through the
    detector's own resize/normalisation as at inference time; the detector is left in eval mode."""
    import torch

    detector.eval()
    images = torch.rand(4, 3, 320, 320, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        batch = detector.transform(list(images))[0].tensors
    for module in detector.backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: exactly this batch's statistics
    detector.backbone.train()
    with torch.no_grad():
        detector.backbone(batch)
    detector.eval()


def ssdlite():
    """torchvision SSDLite320 MobileNetV3-Large, 91 COCO classes, at most 50 detections scoring > 0.3."""
    import torch
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    torch.manual_seed(0)
    model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, score_thresh=0.3,
                                          detections_per_img=50)
    _calibrate_batch_norm(model)
    for branch in model.head.classification_head.module_list:  # random logits too small: every score ~1/91
        torch.nn.init.normal_(branch[-1].weight, std=1.0)
    return model.eval()


def fasterrcnn():
    """torchvision Faster R-CNN MobileNetV3-Large 320 FPN, at most 50 detections scoring > 0.1."""
    import torch
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    torch.manual_seed(0)
    model = fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None, box_score_thresh=0.1,
                                                  box_detections_per_img=50)
    _calibrate_batch_norm(model)
    # random class logits are too small (every score ~1/91); larger ones spread the scores
    torch.nn.init.normal_(model.roi_heads.box_predictor.cls_score.weight, std=0.2)
    return model.eval()


def yolov8n():
    """Ultralytics YOLOv8n (random init): forward returns (y, {"boxes", "scores", "feats": [p3, p4, p5]})."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if "YOLO_CONFIG_DIR" not in os.environ:  # Ultralytics writes its settings there; removed when this process ends
        folder = tempfile.mkdtemp(prefix="yolo-config-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ["YOLO_CONFIG_DIR"] = folder
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    return YOLO("yolov8n.yaml").model.eval()


def constant_softmax_classifier():
    """Always the probabilities (0.1, 0.2, 0.25, 0.45): zero weights, log-probability biases, nn.Softmax."""
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 4), torch.nn.Softmax(dim=1))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.weight.zero_()
                module.bias.zero_()
        model[3].bias.copy_(torch.log(torch.tensor([0.1, 0.2, 0.25, 0.45])))
    return model.eval()
