"""Native TensorRT: engine building, the engine cache, and running plans.

Modules (TensorRT, pycuda and cuda-python are imported lazily, inside functions):

api.py        the ONE place that knows TensorRT versions: ``import_tensorrt()`` and
              ``features(trt) -> TrtFeatures`` (named I/O, memory-pool limit, EXPLICIT_BATCH,
              precision builder flags, INT8 calibrators, engine inspector, ...), found by
              feature detection (hasattr), never by JetPack version strings.
builder.py    ``build_engine(onnx_path, options: BuildOptions, *, report) -> BuildResult``:
              ONNX -> serialized plan for TensorRT 8.2, 8.5/8.6, 10.x and 11.x; precision fp32/fp16/int8,
              profiles, workspace limit, timing cache, DLA, progress; checks the precision obtained.
calibrator.py INT8 entropy calibration from a folder of images through the model's own preprocessing,
              with a calibration cache keyed by a hash of the images and settings.
cache.py      the engine cache (``~/.cache/edge/engines``): key over ONNX sha256, precision, profiles,
              TensorRT version, GPU compute capability and platform; ``<key>.plan`` + ``<key>.json``
              sidecar ({"edge_config": ..., "provenance": ...}); a mismatch rebuilds, never a stale plan.
engine_io.py  engine I/O in one vocabulary: tensor names (TensorRT >= 8.5) or binding indices (8.2).
runner.py     deserialize a plan and run it through engine_io over the CUDA memory layer (edge.cuda):
              pinned host buffers, one stream, async copies.
"""
