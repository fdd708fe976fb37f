"""The camera app's command line: its flags (``build_parser``) and the ``--list-*`` listings.

Imported by :mod:`edge.camera` after it has installed its signal handlers (argparse takes tens of ms to
import on a slow board, and a Ctrl-C then must already stop cleanly).
"""

import argparse
from typing import Any

from edge.flags import add_model_fact_arguments

DESCRIPTION = "``python -m edge.camera``: run a model on a camera (or any source) and show or save the results."
EPILOG = """sources: 0 | /dev/video0 | csi://0?width=1280&height=720&fps=30&flip=rotate-180 | rtsp://host/path |
         video.mp4 | image.jpg | folder/ | gst://<pipeline ending in appsink> | demo://?seed=0
outputs: out.mp4 | out.mkv | out.avi | frames_%05d.jpg | mask:masks_%05d.png | results.jsonl |
         - (JSON lines on stdout) | display | none | mqtt://[user@]host[:port]/topic?qos=1 |
         mqtts://host/topic?ca=ca.pem (password: EDGE_MQTT_PASSWORD) |
         http://127.0.0.1:8080/ (a live page; other hosts need EDGE_HTTP_TOKEN) | rtsp://@:8554/live
examples:
  python -m edge.camera                                   # default model, camera or demo://
  python -m edge.camera --source demo:// --headless --max-frames 100 --output out.mp4 --output -
  python -m edge.camera --model classifier.onnx --task classify --preset imagenet --labels labels.txt
  python -m edge.camera --source demo:// --track --output -    # detections with persistent track ids
  python -m edge.camera --model yolo11n-seg.onnx --source image.jpg --output mask:masks_%05d.png --output -
                                                           # a class-id PNG per frame; COCO RLE masks in JSON lines
  python -m edge.camera --pipeline hands                  # two stages: palm detector, then hand landmarks
  python -m edge.camera --model dynamic_batch.onnx --source demo://?seed=1 --source demo://?seed=2 --output out.mp4
                                                           # two streams batched: out_stream0.mp4, out_stream1.mp4
  python -m edge.camera --sources cams.txt --output -      # one URI (or name=URI) a line; "stream" in each line
  python -m edge.camera --output mqtt://broker.local/cams/door?qos=1   # one message per frame, retained status
  python -m edge.camera --headless --output http://127.0.0.1:8080/      # watch it in a browser (ssh -L 8080:...)
  python -m edge.camera --backend triton --triton-url grpc://server:8001 --model repo/face_detection_short_range
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (flags shared with the rest of edge: --model, --source, --backend, --output)."""
    parser = argparse.ArgumentParser(prog="python -m edge.camera", description=DESCRIPTION,
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--model", help="a .onnx file or a zoo name (default: face_detection_short_range)")
    run.add_argument("--source", action="append", help="where frames come from (default: first camera, else "
                     "demo://); repeat for several streams, batched through the model when its batch is dynamic")
    run.add_argument("--sources", metavar="FILE", help="several streams from a file: one URI (or name=URI) a line, "
                     "# comments; after any --source")
    run.add_argument("--backend", default="auto", help="auto (default), onnxruntime, onnxruntime-cpu, "
                     "onnxruntime-cuda, onnxruntime-tensorrt, opencv, tensorrt, triton (an inference server)")
    run.add_argument("--threads", type=int, help="CPU threads for inference (default: the cores the pipeline's "
                     "capture and main threads leave, at least 1; printed at start)")
    run.add_argument("--triton-url", metavar="URL", help="--backend triton: the inference server, grpc://HOST:8001 "
                     "or http://HOST:8000 (--model: the repository entry folder edge-export triton wrote)")
    run.add_argument("--triton-model", metavar="NAME", help="--backend triton: the model's name on the server "
                     "(default: the folder name of the repository entry given as --model)")
    run.add_argument("--precision", choices=["fp32", "fp16", "int8"],
                     help="TensorRT: engine precision (default: fp16 where the GPU has fast fp16); CPU backends: "
                     "run a reduced file (the model's own, its edge-export quantize sibling, or one made once here)")
    run.add_argument("--calib-images", metavar="DIR", help="int8: calibration images (a few hundred frames); CPU "
                     "backends quantize the model with them once (cached)")
    run.add_argument("--threshold", type=float, help="minimum score to report (default: from the model)")
    two = parser.add_argument_group("two stages (a detector, then a model on each detection's crop)")
    two.add_argument("--then", metavar="MODEL", help="second model, run on a crop of each detection of --model: "
                     "landmarks (keypoints) or an embedder")
    two.add_argument("--pipeline", metavar="NAME|FILE", help="a two-stage pipeline: a .json file or a shipped one "
                     "(hands, face_mesh, digit_recognition; see --list-models)")
    two.add_argument("--crop-scale", type=float, metavar="S", help="crop side as a multiple of the detection box")
    two.add_argument("--max-objects", type=int, metavar="N", help="second-stage runs per frame (best first)")
    two.add_argument("--gallery", metavar="DIR", help="embedders: match each vector to the named pictures in DIR "
                     "(alice.jpg, or alice/1.jpg ...) by cosine similarity")
    two.add_argument("--match-threshold", type=float, metavar="T",
                     help="with --gallery: similarity from which a match counts (default: from the model)")
    run.add_argument("--track", action="store_true",
                     help="detectors: give each detection a track id that persists across frames (ByteTrack-style)")
    run.add_argument("--output", action="append", default=[], metavar="SPEC",
                     help="where results go; repeat for several (see below)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace existing .jsonl and video outputs (without it they are refused, never emptied)")
    run.add_argument("--segment-seconds", type=float, metavar="S",
                     help="record video outputs as files of S seconds each (out.mp4 -> out_00000.mp4, ...): "
                     "a kill or power cut loses at most the last one")
    run.add_argument("--headless", action="store_true", help="no window, even where a display exists")
    run.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    run.add_argument("--quiet", action="store_true", help="only errors and the summary")
    run.add_argument("--summary-json", metavar="FILE", help="also write the run summary as JSON to FILE")
    info = parser.add_argument_group("information")
    info.add_argument("--list-cameras", action="store_true", help="list the cameras found and exit")
    info.add_argument("--list-backends", action="store_true", help="list backends and whether they run here")
    info.add_argument("--list-models", action="store_true", help="list the models shipped with edge and exit")
    add_model_fact_arguments(parser, "model facts, for an ONNX file without an edge config")
    return parser


def list_cameras(say: Any) -> int:
    """--list-cameras: one line a camera found, or what to try when there is none."""
    from edge.sources import list_cameras

    cameras = list_cameras()
    if not cameras:
        say("no cameras found (try --source demo://, a video file or an rtsp:// URL)")
    for camera in cameras:
        say(f"{camera.uri:<14} {camera.kind:<6} {camera.name}")
    return 0


def list_backends(say: Any) -> int:
    """--list-backends: every backend, and whether it runs here (or why not)."""
    from edge.backends import BACKENDS, availability

    for name, reason in availability():
        status = "available" if reason is None else f"unavailable: {reason}"
        say(f"{name:<22} {BACKENDS[name].summary}. {status}")
    return 0


def list_models(say: Any) -> int:
    """--list-models: the zoo table, then the shipped two-stage pipelines."""
    from edge.zoo import TABLE_HEADER, list_models

    say(TABLE_HEADER)
    for entry in list_models():
        say(entry.row())
    from edge.zoo import pipelines

    shipped = pipelines()
    if shipped:
        say("pipelines (--pipeline NAME):")
        for name, item in sorted(shipped.items()):
            say(f"{name:<28} {item['model']} -> {item['then']}: {item.get('summary', '')}")
    return 0
