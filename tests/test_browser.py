"""The web page in Debian's Chromium, driven by Playwright, with a fake camera that plays a .y4m video of real
faces: the page must stream frames to a real ``facexpr serve`` and draw labelled boxes over the video.

Needs ``chromium`` and Playwright for Python (scripts/install_browser_test_deps.sh); skips when either is missing.
The screenshot goes to $FACEXPR_ARTIFACTS or tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import pytest
from serving_support import compose_scene, detectable_faces, running_server, write_y4m, yunet_file

from facexpr.detection.face_detectors import YuNetDetector
from facexpr.labels import FER2013_CLASSES

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 180_000  # the first frames wait for the server and Chromium on a busy two-core machine


def chromium_path() -> str:
    path = os.environ.get("FACEXPR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium not installed (scripts/install_browser_test_deps.sh)")
    return path


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("FACEXPR_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    if folder == ROOT / "tests" / "artifacts":
        (folder / ".gitignore").write_text("*\n")
    return folder


@pytest.fixture(scope="module")
def yunet(shared_dir: Path) -> Path:
    return yunet_file(shared_dir)


@pytest.fixture(scope="module")
def face_scenes(yunet: Path, faces_dir: Path) -> list:
    faces = detectable_faces(faces_dir, YuNetDetector(yunet), 2, side=160)
    return [compose_scene(faces, 640, 480, shift=int(12 * (i % 10) / 10)) for i in range(30)]


@pytest.fixture(scope="module")
def fake_camera(face_scenes: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds at 10 fps of two real FER faces (upscaled on a plain background), drifting slowly."""
    return write_y4m(tmp_path_factory.mktemp("camera") / "faces.y4m", face_scenes, fps=10)


def test_page_draws_labelled_boxes_over_the_camera(
    yunet: Path, fake_camera: Path, face_scenes: list, tmp_path: Path
) -> None:
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    flags = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={fake_camera}",
    ]
    upload = tmp_path / "upload.jpg"
    cv2.imwrite(str(upload), face_scenes[0])
    with running_server(yunet, tmp_path / "server.log") as url, sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            headless=True,
            args=flags,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
            page.goto(url + "/")
            page.wait_for_function(
                "document.getElementById('model-info').textContent.startsWith('model ')", timeout=WAIT_MS
            )
            page.click("#camera-start")
            page.wait_for_function("Number(document.getElementById('overlay').dataset.faceCount) >= 2", timeout=WAIT_MS)
            labels = page.get_attribute("#overlay", "data-labels").split(",")
            assert len(labels) >= 2 and set(labels) <= set(FER2013_CLASSES)
            drawn = page.evaluate(
                """() => {
                    const c = document.getElementById('overlay');
                    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let opaque = 0;
                    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) opaque++;
                    return {opaque, total: data.length / 4};
                }"""
            )
            assert 0.002 < drawn["opaque"] / drawn["total"] < 0.5, drawn  # boxes, captions and bars, not a fill
            assert page.locator("#faces .face").count() >= 2
            page.wait_for_function("document.getElementById('fps').textContent !== '–'", timeout=WAIT_MS)
            assert page.locator("#latency").inner_text().endswith("ms")
            assert int(page.inner_text("#timeline-count").split()[0]) >= 2
            assert page.locator("#csv-download").is_enabled()

            page.set_input_files("#upload-input", str(upload))
            page.wait_for_selector("#upload-result:not([hidden])", timeout=WAIT_MS)
            assert int(page.get_attribute("#upload-result", "data-face-count")) == 2
            assert page.locator("#upload-faces .face").count() == 2

            with page.expect_download() as download:
                page.click("#csv-download")
            rows = Path(download.value.path()).read_text().splitlines()
            assert rows[0].startswith("source,frame,time,face,track_id,x,y,w,h") and len(rows) >= 3

            screenshot = artifacts_dir() / "browser_page.png"
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            page.click("#camera-stop")
            assert not problems, problems
        finally:
            context.close()
