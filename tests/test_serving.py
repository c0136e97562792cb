"""The HTTP API and camera stream against the real app: a real detector (random-weight model, real YuNet) and
real images of faces; bad uploads must be refused with a JSON error and leave the server working."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve,test]')")
pytest.importorskip("httpx", reason="httpx is needed by fastapi.testclient")

from fastapi.testclient import TestClient  # noqa: E402
from serving_support import (  # noqa: E402
    compose_scene,
    detectable_faces,
    jpeg_bytes,
    running_server,
    yunet_file,
)
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from facexpr import Detector, create_model  # noqa: E402
from facexpr.cli import main  # noqa: E402
from facexpr.preprocessing import read_image  # noqa: E402
from facexpr.serving import ServerSettings, create_app  # noqa: E402
from facexpr.serving.errors import ServerBusy  # noqa: E402
from facexpr.serving.inference import DetectorPool  # noqa: E402

MAX_UPLOAD = 300_000
MAX_PIXELS = 2_500_000
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def yunet(shared_dir: Path) -> Path:
    return yunet_file(shared_dir)


def make_detector(yunet: Path) -> Detector:
    return Detector(create_model("resemotenet_w025_g48"), "yunet", backend="torch", yunet_path=yunet, threads=1)


@pytest.fixture(scope="module")
def detector(yunet: Path) -> Detector:
    return make_detector(yunet)


@pytest.fixture(scope="module")
def faces(detector: Detector, faces_dir: Path) -> list[np.ndarray]:
    return detectable_faces(faces_dir, detector.face_detector, 3)


@pytest.fixture(scope="module")
def scene(faces: list[np.ndarray]) -> np.ndarray:
    return compose_scene(faces)


@pytest.fixture(scope="module")
def client(detector: Detector):
    app = create_app(detector, ServerSettings(max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS))
    with TestClient(app) as test_client:
        yield test_client


def frame_message(frame_id: int, data: bytes) -> bytes:
    return struct.pack(">I", frame_id) + data


# -- POST /v1/predict ---------------------------------------------------------------------------------------


def test_predict_multipart_matches_the_predict_schema(client: TestClient, detector: Detector, scene) -> None:
    data = jpeg_bytes(scene)
    response = client.post("/v1/predict", files={"file": ("scene.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["model"]) == (640, 480, "resemotenet_w025_g48")
    assert body["time_ms"] > 0 and "annotated_jpeg" not in body
    expected = detector.predict_image(read_image(data), source="<upload>")
    assert len(expected) == 3
    assert body["faces"] == json.loads(json.dumps(expected))  # same records as `facexpr predict` writes
    lefts = [face["box"][0] for face in body["faces"]]
    assert sorted(lefts) == sorted(set(lefts)) and all(set(f["scores"]) == set(detector.class_names) for f in expected)


def test_predict_raw_body_with_annotated_image(client: TestClient, scene) -> None:
    ok, png = cv2.imencode(".png", scene)
    response = client.post("/v1/predict?annotated=1", content=png.tobytes(), headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["faces"]) == 3
    annotated = read_image(base64.b64decode(body["annotated_jpeg"]))
    assert annotated.shape == scene.shape
    x, y, w, h = body["faces"][0]["box"]
    assert np.abs(annotated[y, x : x + w].astype(int) - scene[y, x : x + w]).mean() > 20  # the box edge is drawn


def test_image_without_faces_gives_an_empty_list(client: TestClient) -> None:
    blank = np.full((240, 320, 3), 150, np.uint8)
    response = client.post("/v1/predict", content=jpeg_bytes(blank), headers={"content-type": "image/jpeg"})
    assert response.status_code == 200 and response.json()["faces"] == []


def _chunks(total: int, size: int = 64 * 1024):
    for _ in range(total // size):
        yield b"\xff" * size


@pytest.mark.parametrize(
    ("name", "request_kwargs", "status", "message"),
    [
        ("declared too large", {"content": b"\xff" * (MAX_UPLOAD + 70_000)}, 413, "larger than the limit"),
        ("streamed too large", {"content": _chunks(MAX_UPLOAD * 2)}, 413, "larger than the limit"),
        ("garbage", {"content": b"definitely not an image"}, 422, "not a readable image"),
        ("empty", {"content": b""}, 422, "empty upload"),
        ("wrong type", {"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "not accepted"),
        ("no type", {"content": b"hello", "headers": {"content-type": ""}}, 415, "not accepted"),
        ("no file field", {"data": {"name": "x"}, "files": {"other": ("a.jpg", b"x")}}, 422, "no file field"),
        ("text part", {"files": {"file": ("a.txt", b"hello", "text/plain")}}, 415, "send an image"),
        (
            "broken multipart",
            {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
            400,
            "",
        ),
    ],
)
def test_bad_uploads_get_a_json_error(client: TestClient, name: str, request_kwargs: dict, status: int, message: str):
    kwargs = dict(request_kwargs)
    if "content" in kwargs and "headers" not in kwargs:
        kwargs["headers"] = {"content-type": "image/jpeg"}
    response = client.post("/v1/predict", **kwargs)
    assert response.status_code == status, (name, response.text)
    assert message in response.json()["error"]


def test_truncated_and_oversized_images_are_refused(client: TestClient, scene) -> None:
    data = jpeg_bytes(scene)
    truncated = client.post("/v1/predict", content=data[: len(data) // 3], headers={"content-type": "image/jpeg"})
    assert truncated.status_code == 422 and "corrupt or truncated" in truncated.json()["error"]
    # A small file that decodes to too many pixels (a decompression bomb in miniature).
    huge = jpeg_bytes(np.zeros((2000, 2000, 3), np.uint8), quality=10)
    assert len(huge) < MAX_UPLOAD
    response = client.post("/v1/predict", files={"file": ("big.jpg", huge, "image/jpeg")})
    assert response.status_code == 422 and "too large (2000x2000" in response.json()["error"]
    still_fine = client.post("/v1/predict", files={"file": ("scene.jpg", data, "image/jpeg")})
    assert still_fine.status_code == 200 and len(still_fine.json()["faces"]) == 3


# -- other endpoints ----------------------------------------------------------------------------------------


def test_health_model_page_and_docs(client: TestClient, detector: Detector) -> None:
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["workers"] == 1 and health["running"] == 0
    info = client.get("/v1/model").json()
    assert info["name"] == "resemotenet_w025_g48" and info["classes"] == list(detector.class_names)
    assert info["input"]["size"] == detector.config.input_size and info["backend"] == "torch"
    assert set(info["colors"]) == set(detector.class_names) and info["limits"]["max_upload_bytes"] == MAX_UPLOAD
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="overlay"' in page.text
    for asset in ("static/app.js", "static/style.css"):
        assert client.get(f"/{asset}").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "multipart/form-data" in schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}


def test_cors_only_when_configured(client: TestClient, detector: Detector) -> None:
    origin = {"Origin": "http://elsewhere.example"}
    assert "access-control-allow-origin" not in client.get("/v1/health", headers=origin).headers
    app = create_app(detector, ServerSettings(cors_origins=("http://elsewhere.example",)))
    with TestClient(app) as allowed:
        headers = allowed.get("/v1/health", headers=origin).headers
        assert headers["access-control-allow-origin"] == "http://elsewhere.example"


# -- the inference bound ------------------------------------------------------------------------------------


def test_pool_bounds_concurrent_inference_and_refuses_beyond_the_queue(yunet: Path) -> None:
    detectors = [make_detector(yunet), make_detector(yunet)]
    in_use: set[int] = set()
    peak, lock = [0], threading.Lock()

    def work(detector: Detector) -> int:
        with lock:
            assert id(detector) not in in_use, "one detector used by two threads at once"
            in_use.add(id(detector))
            peak[0] = max(peak[0], len(in_use))
        time.sleep(0.05)
        with lock:
            in_use.discard(id(detector))
        return id(detector)

    async def scenario() -> tuple[list, list]:
        pool = DetectorPool(detectors, max_queue=4, timeout_s=10)
        results = await asyncio.gather(*(pool.run(work) for _ in range(6)), return_exceptions=True)
        small = DetectorPool(detectors[:1], max_queue=1, timeout_s=10)
        crowded = await asyncio.gather(*(small.run(work) for _ in range(4)), return_exceptions=True)
        return results, crowded

    results, crowded = asyncio.run(scenario())
    assert peak[0] == 2 and all(isinstance(r, int) for r in results) and len(set(results)) == 2
    busy = [r for r in crowded if isinstance(r, ServerBusy)]
    assert len(busy) == 2 and busy[0].status == 503  # one runs, one waits, the rest are refused at once


# -- WS /v1/stream ------------------------------------------------------------------------------------------


def test_stream_answers_the_latest_frame_and_drops_stale_ones(client: TestClient, faces) -> None:
    frames = [jpeg_bytes(compose_scene(faces, 1280, 960, shift=4 * i)) for i in range(40)]
    with client.websocket_connect("/v1/stream") as socket:
        for frame_id, data in enumerate(frames, start=1):
            socket.send_bytes(frame_message(frame_id, data))
        answers = []
        while not answers or answers[-1]["id"] != len(frames):
            answers.append(socket.receive_json())
    ids = [answer["id"] for answer in answers]
    assert all(answer["type"] == "faces" for answer in answers)
    assert len(answers) < len(frames) and ids == sorted(set(ids)) and set(ids) <= set(range(1, 41))
    assert answers[-1]["dropped"] > 0 and answers[-1]["received"] == len(frames)
    last = answers[-1]["faces"]
    assert len(last) == 3 and all(face["frame"] == 40 and "track_id" in face for face in last)


def test_stream_survives_bad_frames(client: TestClient, scene) -> None:
    with client.websocket_connect("/v1/stream") as socket:
        socket.send_text("hello")
        assert "binary" in socket.receive_json()["error"]
        socket.send_bytes(b"\x00\x01")
        assert "no image" in socket.receive_json()["error"]
        socket.send_bytes(frame_message(7, b"not a jpeg"))
        answer = socket.receive_json()
        assert answer["type"] == "error" and answer["id"] == 7 and "not a readable image" in answer["error"]
        socket.send_bytes(frame_message(8, b"\xff" * (MAX_UPLOAD + 1)))
        assert socket.receive_json()["id"] == 8
        socket.send_bytes(frame_message(9, jpeg_bytes(scene)))
        answer = socket.receive_json()
        assert answer["type"] == "faces" and answer["id"] == 9 and len(answer["faces"]) == 3


def test_streams_beyond_the_limit_are_refused(detector: Detector, scene) -> None:
    with TestClient(create_app(detector, ServerSettings(max_streams=1))) as limited:
        with limited.websocket_connect("/v1/stream") as first:
            with pytest.raises(WebSocketDisconnect) as refused:
                with limited.websocket_connect("/v1/stream"):
                    pass
            assert refused.value.code == 1013
            first.send_bytes(frame_message(1, jpeg_bytes(scene)))
            assert first.receive_json()["id"] == 1


# -- facexpr serve ------------------------------------------------------------------------------------------


def test_serve_command_runs_a_real_server(yunet: Path, scene, tmp_path: Path) -> None:
    with running_server(yunet, tmp_path / "server.log", "--max-upload-mb", "0.25") as url:
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            f"{url}/v1/predict", data=jpeg_bytes(scene), headers={"Content-Type": "image/jpeg"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert len(json.load(response)["faces"]) == 3
        too_big = urllib.request.Request(
            f"{url}/v1/predict", data=b"\xff" * 400_000, headers={"Content-Type": "image/jpeg"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(too_big, timeout=30)
        assert refused.value.code == 413 and "262,144 bytes" in json.load(refused.value)["error"]


def test_serve_command_reports_a_bad_model_in_one_line(capsys) -> None:
    assert main(["serve", "--model", "/nonexistent/model.safetensors", "--port", "1"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("facexpr serve: error:") and "\n" not in error
