"""Sources by URI: cameras, streams, files, images and the built-in demo scene.

``open_source("0")``, ``open_source("csi://0?flip=rotate-180")``, ``open_source("clip.mp4")``,
``open_source("demo://", seed=3)``: each returns a :class:`Source`, an iterator of
:class:`~edge.results.Frame` to use in a ``with`` block. URI conventions: :mod:`edge.sources.uri`.
"""

from typing import Any, Optional, Union

from edge.sources.base import Source
from edge.sources.cameras import CameraInfo, default_camera, list_cameras
from edge.sources.uri import SourceSpec, parse_source

__all__ = [
    "CameraInfo",
    "Source",
    "SourceSpec",
    "default_camera",
    "list_cameras",
    "open_source",
    "parse_source",
]


def open_source(uri: Union[str, int], *, opener: Optional[Any] = None, **options: Any) -> Source:
    """Open the source named by ``uri``; keyword options override the URI's query string.

    opener: for live sources, a callable returning a cv2.VideoCapture-like object to use in
    place of the real device (tests, custom backends).
    """
    spec = parse_source(uri, options)
    if spec.kind in ("v4l2", "csi", "rtsp", "http", "gst"):
        from edge.sources.capture import open_live  # noqa: PLC0415 - keeps `import edge.sources` light

        return open_live(spec, opener)
    loop = spec.option_int("loop", 0)
    if spec.kind == "file":
        from edge.sources.capture import VideoFileSource  # noqa: PLC0415

        return VideoFileSource(str(spec.target), loop, spec.uri, decode=spec.options.get("decode"))
    if spec.kind in ("image", "folder"):
        from edge.sources.images import open_folder, open_image  # noqa: PLC0415

        return (open_image if spec.kind == "image" else open_folder)(str(spec.target), loop, spec.uri)
    from edge.sources.demo import DemoSource  # noqa: PLC0415

    return DemoSource(
        spec.uri,
        size_wh=(spec.option_int("width", 1280), spec.option_int("height", 720)),
        fps=spec.option_float("fps", 30.0),
        seed=spec.option_int("seed", 0),
        frames=spec.option_int("frames", 0),
        realtime=spec.option_bool("realtime", False),
        scene=spec.options.get("scene", "face"),
    )
