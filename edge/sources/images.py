"""Still images as a source: one image, or a folder of images in natural order (img2 before img10).

``loop`` follows jetson-utils: 0 plays once, N replays N more times, -1 loops forever.
"""

import re
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.sources.base import Grabbed, Source, now_s
from edge.sources.uri import IMAGE_EXTENSIONS


def natural_key(name: str) -> List[Union[int, str]]:
    """Sort key that orders embedded numbers by value: img2 < img10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_files(folder: Union[str, Path]) -> List[Path]:
    """Image files (by extension) directly in ``folder``, natural order, hidden files skipped."""
    paths = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return sorted(paths, key=lambda p: natural_key(p.name))


def read_image(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 BGR; EdgeError naming the file when it cannot be decoded."""
    cv2 = require_cv2("reading images")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EdgeError(
            f"cannot decode image {path}",
            fix="check that it opens in an image viewer, or remove it",
            where="source",
        )
    return image


class ImageFilesSource(Source):
    """Images from a list of files, each delivered once per pass, in the given order.

    One image that does not decode is an error; in a folder such files are skipped and counted in
    ``skipped_frames``, like a corrupt frame in a video.
    """

    def __init__(self, paths: List[Path], uri: str, loop: int = 0) -> None:
        super().__init__(uri)
        self._paths = paths
        self._loops_left = loop
        self._position = 0
        first = read_image(paths[0]) if len(paths) == 1 else self._first_decodable()
        self._first: Optional[np.ndarray] = first
        self.size_wh = (int(first.shape[1]), int(first.shape[0]))

    def _first_decodable(self) -> np.ndarray:
        """In a folder, undecodable files are skipped (and counted); only a folder with none that decode fails."""
        for index, path in enumerate(self._paths):
            try:
                image = read_image(path)
            except EdgeError:
                continue
            skipped, self._paths = index, self._paths[index:]
            self.skipped_frames += skipped
            return image
        raise EdgeError(f"none of the {len(self._paths)} images in folder {self.uri} can be decoded",
                        fix="check that they open in an image viewer", where="source")

    def _grab(self, timeout_s: Optional[float]) -> Optional[Grabbed]:
        if self._position == len(self._paths):
            if self._loops_left == 0:
                self._end("end of images")
                return None
            if self._loops_left > 0:
                self._loops_left -= 1
            self._position = 0
        if self._position == 0 and self._first is not None:
            image = self._first
            self._first = None if len(self._paths) > 1 else image  # a single image is kept for loops
        else:
            while True:  # a file of a folder that does not decode is skipped and counted, as a corrupt video frame
                try:
                    image = read_image(self._paths[self._position])
                    break
                except EdgeError:
                    self.skipped_frames += 1
                    self._position += 1
                    if self._position == len(self._paths):
                        return self._grab(timeout_s)
        self._position += 1
        return image.copy() if len(self._paths) == 1 else image, now_s(), {}


def open_image(path: str, loop: int = 0, uri: Optional[str] = None) -> ImageFilesSource:
    """A source that delivers one image file (``loop`` times more)."""
    return ImageFilesSource([Path(path)], uri or path, loop)


def open_folder(folder: str, loop: int = 0, uri: Optional[str] = None) -> ImageFilesSource:
    """A source over the images in ``folder``, natural order; EdgeError when it holds none."""
    paths = image_files(folder)
    if not paths:
        raise EdgeError(
            f"no images in folder {folder}",
            fix=f"put {', '.join(IMAGE_EXTENSIONS)} files in it, or pass a video file",
            where="source",
        )
    return ImageFilesSource(paths, uri or folder, loop)
