"""Cameras attached to this machine, found from /dev/video* and /sys/class/video4linux.

Heuristics (no device is opened):
- A UVC webcam creates two nodes, one for frames and one for metadata. The kernel numbers
  the nodes of one device in ``/sys/class/video4linux/videoN/index``: the frame node is 0,
  so nodes with another index are skipped.
- On a Jetson, CSI sensors appear as nodes named ``vi-output, <sensor> <i2c address>``;
  they are listed as ``csi://K``, K counting those nodes in /dev order, which is the
  ``sensor-id`` order of nvarguscamerasrc on NVIDIA's carrier boards.
Where /sys is missing (macOS, containers without /dev) the list is empty: no exception.
"""

import glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

SYS_V4L = Path("/sys/class/video4linux")


@dataclass(frozen=True)
class CameraInfo:
    """A camera: the URI to open it with, its driver name, and kind ("v4l2" or "csi")."""

    uri: str
    name: str
    kind: str


def _read_text(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def list_cameras(dev_glob: str = "/dev/video*", sys_root: Path = SYS_V4L) -> List[CameraInfo]:
    """Cameras found on this machine, in /dev/videoN order; empty where there are none."""
    nodes = []
    for dev in glob.glob(dev_glob):
        match = re.search(r"video(\d+)$", dev)
        if match:
            nodes.append((int(match.group(1)), dev))
    cameras: List[CameraInfo] = []
    csi_count = 0
    for number, dev in sorted(nodes):
        node_sys = sys_root / f"video{number}"
        index = _read_text(node_sys / "index")
        if index not in (None, "0"):
            continue  # a second node of the same device: metadata, not frames
        name = _read_text(node_sys / "name") or f"video{number}"
        if name.startswith("vi-output"):
            cameras.append(CameraInfo(f"csi://{csi_count}", name, "csi"))
            csi_count += 1
        else:
            cameras.append(CameraInfo(dev, name, "v4l2"))
    return cameras


def default_camera() -> Optional[str]:
    """URI of the first camera found (a CSI sensor or /dev/videoN), or None."""
    cameras = list_cameras()
    return cameras[0].uri if cameras else None
