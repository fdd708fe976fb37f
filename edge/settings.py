"""The one place that reads environment variables.

EDGE_CACHE_DIR      where engines, timing caches and calibration caches go (default: $XDG_CACHE_HOME/edge,
                    else ~/.cache/edge)
EDGE_CUDA           preferred CUDA layer: "cuda-python" or "pycuda" (default: whichever imports, cuda-python first)
EDGE_MQTT_PASSWORD  the password of mqtt:// and mqtts:// outputs (kept out of the process list)
EDGE_HTTP_TOKEN     the token viewers of an http:// live page must give (?token= or an Authorization: Bearer
                    header); needed for a page served beyond this machine (kept out of the process list)
EDGE_NO_MODELOPT    set (non-empty): edge.quantize uses ONNX Runtime's quantization tools even where NVIDIA ModelOpt
                    is installed
"""

import os
from pathlib import Path
from typing import Optional


def cache_dir() -> Path:
    """Root of edge's caches (not created here)."""
    explicit = os.environ.get("EDGE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "edge"


def preferred_cuda_layer() -> Optional[str]:
    """EDGE_CUDA, or None for the default order."""
    value = os.environ.get("EDGE_CUDA", "").strip().lower()
    return value or None


def mqtt_password() -> Optional[str]:
    """EDGE_MQTT_PASSWORD, or None when unset or empty."""
    return os.environ.get("EDGE_MQTT_PASSWORD") or None


def http_token() -> Optional[str]:
    """EDGE_HTTP_TOKEN, or None when unset or empty."""
    return os.environ.get("EDGE_HTTP_TOKEN") or None


def modelopt_disabled() -> bool:
    """Whether EDGE_NO_MODELOPT asks edge.quantize to leave NVIDIA ModelOpt out."""
    return bool(os.environ.get("EDGE_NO_MODELOPT"))
