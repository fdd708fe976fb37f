"""The live page in a real browser: headless Chromium (Debian's chromium) opens the page of a demo:// run served on
the network with a token, and shows the moving scene with the face box and the face in the results list."""

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_screenshot import ROOT, WINDOW_WH, LiveApp, chromium, chromium_dom, chromium_screenshot  # noqa: E402

cv2 = pytest.importorskip("cv2")
pytestmark = pytest.mark.skipif(chromium() is None, reason="no chromium: as root, DEBIAN_FRONTEND=noninteractive "
                                "apt-get install -y --no-install-recommends chromium")
TOKEN = "page-token-42"
BACKGROUND_BGR = (0x1A, 0x17, 0x15)  # the page's background, #15171a


def video_box(image: np.ndarray) -> tuple:
    """(x0, y0, x1, y1) of the video: the rows and columns of the page's left part that are mostly not background."""
    differs = np.abs(image.astype(np.int16) - np.array(BACKGROUND_BGR, np.int16)).max(axis=2) > 24
    differs[:45] = False  # the header bar
    differs[:, int(image.shape[1] * 0.68):] = False  # the side panel
    rows = np.flatnonzero(differs.mean(axis=1) > 0.4)
    cols = np.flatnonzero(differs.mean(axis=0) > 0.4)
    assert rows.size and cols.size, "no video on the page"
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_page_shows_the_live_video_with_the_face_and_the_results(tmp_path):
    with LiveApp(host="0.0.0.0", env={"EDGE_HTTP_TOKEN": TOKEN}) as app:
        time.sleep(0.5)
        url = f"{app.url}?token={TOKEN}"  # the page must pass its token on to /stream.mjpg and /events
        for attempt in range(3):  # the first frame may reach the page after Chromium's first look
            shot = cv2.imread(str(chromium_screenshot(url, tmp_path / f"page{attempt}.png")))
            if float(shot[60:, : WINDOW_WH[0] // 2].std()) > 25:
                break
        dom = chromium_dom(url, until='<span class="label">face</span>', attempts=6)  # a frame may have no face
    assert shot.shape[:2] == (WINDOW_WH[1], WINDOW_WH[0])
    x0, y0, x1, y1 = video_box(shot)
    assert x1 - x0 > 600 and abs((x1 - x0) / (y1 - y0) - 16 / 9) < 0.06  # the 1280x720 scene, scaled to fit
    video = shot[y0:y1, x0:x1]
    assert float(video.std()) > 25  # a scene, not a blank or black box
    blue, green, red = (video[..., i].astype(int) for i in range(3))
    assert int(((red > 170) & (green < 90) & (blue < 90)).sum()) > 100  # the face's box and label, drawn in red
    results = dom.split('<ul id="results">', 1)[1].split("</ul>", 1)[0]
    assert '<span class="label">face</span>' in results, dom[-3000:]
    assert 'id="frame">frame --' not in dom and 'id="state">live' in dom
    assert "infer" in dom.split('<table id="stages">', 1)[1].split("</table>", 1)[0]


def test_the_readme_picture_is_a_small_png_of_the_page():
    picture = ROOT / "docs" / "live_page.png"
    assert picture.is_file(), "make it with: python tests/edge/sinks/make_screenshot.py"
    assert picture.stat().st_size < 200 * 1024
    image = cv2.imread(str(picture))
    assert image.shape[:2] == (int(WINDOW_WH[1] * 0.8), int(WINDOW_WH[0] * 0.8))
    assert float(image.std()) > 25
