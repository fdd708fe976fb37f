"""Training-side conversions: trained models become ONNX files with the edge config embedded.

``edge-export onnx SOURCE --config edge.json --output model.onnx``. Depends on ``edge``
(never the other way round).
"""
