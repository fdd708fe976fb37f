"""Camera discovery from /dev and /sys, on a fake sysfs tree and on this machine."""

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from edge.sources import default_camera, list_cameras
from edge.sources.cameras import CameraInfo


def test_list_cameras_on_this_machine_does_not_raise() -> None:
    cameras = list_cameras()
    assert isinstance(cameras, list)
    assert all(isinstance(camera, CameraInfo) for camera in cameras)
    default = default_camera()
    assert default == (cameras[0].uri if cameras else None)


# node number -> (name, index) in /sys; None: no /sys entry
WEBCAM_AND_CSI: Dict[int, Optional[Tuple[str, str]]] = {
    0: ("vi-output, imx219 9-0010", "0"),
    1: ("vi-output, imx219 10-0010", "0"),
    2: ("HD Pro Webcam C920", "0"),
    3: ("HD Pro Webcam C920", "1"),
    10: ("Integrated Camera", "0"),
}


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        (
            WEBCAM_AND_CSI,
            [
                CameraInfo("csi://0", "vi-output, imx219 9-0010", "csi"),
                CameraInfo("csi://1", "vi-output, imx219 10-0010", "csi"),
                CameraInfo("{dev}/video2", "HD Pro Webcam C920", "v4l2"),
                CameraInfo("{dev}/video10", "Integrated Camera", "v4l2"),
            ],
        ),
        ({4: None}, [CameraInfo("{dev}/video4", "video4", "v4l2")]),
        ({}, []),
    ],
)
def test_list_cameras_from_sysfs(tmp_path: Path, nodes, expected: List[CameraInfo]) -> None:
    dev, sys_root = tmp_path / "dev", tmp_path / "sys"
    dev.mkdir()
    for number, entry in nodes.items():
        (dev / f"video{number}").touch()
        if entry is not None:
            (sys_root / f"video{number}").mkdir(parents=True)
            (sys_root / f"video{number}" / "name").write_text(entry[0] + "\n")
            (sys_root / f"video{number}" / "index").write_text(entry[1] + "\n")
    (dev / "video-notes").touch()
    found = list_cameras(dev_glob=str(dev / "video*"), sys_root=sys_root)
    assert found == [CameraInfo(c.uri.format(dev=dev), c.name, c.kind) for c in expected]
