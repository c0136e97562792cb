"""The FastAPI app: ``/v1/predict``, ``/v1/health``, ``/v1/model``, ``WS /v1/stream`` and the web page at ``/``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from facexpr import __version__
from facexpr.detection.detector import Detector
from facexpr.detection.drawing import COLORS
from facexpr.serving.errors import ApiError, PayloadTooLarge, install_error_handlers
from facexpr.serving.inference import DetectorPool, analyse_image
from facexpr.serving.limits import BodySizeLimit
from facexpr.serving.settings import ServerSettings
from facexpr.serving.stream import StreamHub

STATIC_DIR = Path(str(resources.files("facexpr") / "static"))
# Room for the multipart boundary and part headers around an upload of the maximum size.
_MULTIPART_SLACK = 64 * 1024
_RAW_TYPES = ("image/", "application/octet-stream")


class FaceRecord(BaseModel):
    """One face, in the schema of ``facexpr predict`` (JSON lines)."""

    source: str
    frame: int
    time: float
    face: int = Field(description="index of the face in this image")
    box: list[int] = Field(description="x, y, width, height in image pixels")
    detector_score: float
    label: str
    score: float = Field(description="probability of the label")
    scores: dict[str, float] = Field(description="probability per class")
    track_id: int | None = Field(None, description="stable face id across stream frames (stream only)")


class PredictResponse(BaseModel):
    faces: list[FaceRecord]
    width: int
    height: int
    time_ms: float = Field(description="server time to decode, detect and classify")
    model: str
    annotated_jpeg: str | None = Field(None, description="base64 JPEG with boxes and labels (?annotated=1)")


class ErrorResponse(BaseModel):
    error: str


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def model_info(detector: Detector, settings: ServerSettings) -> dict[str, Any]:
    config = detector.config
    meta = dict(config.meta)
    return {
        "name": config.name,
        "arch": config.arch,
        "classes": list(detector.class_names),
        "colors": {name: _hex(COLORS.get(name, (180, 180, 180))) for name in detector.class_names},
        "input": {
            "size": config.input_size,
            "channels": config.in_chans,
            "grayscale": True,
            "mean": list(config.mean),
            "std": list(config.std),
        },
        "backend": detector.backend.name,
        "val_metrics": {key: value for key, value in meta.items() if key.startswith("val")},
        "meta": meta,
        "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels},
    }


async def _read_upload(request: Request, settings: ServerSettings) -> bytes:
    """The image bytes of a multipart ``file`` field or of a raw ``image/*`` body; 413/415/422 otherwise."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "multipart body has no file field named 'file'")
            part_type = (upload.content_type or "").lower()
            if part_type and not part_type.startswith(_RAW_TYPES):
                raise ApiError(415, f"file part has content type {part_type!r}; send an image")
            data = await upload.read(settings.max_upload_bytes + 1)
    elif content_type.startswith(_RAW_TYPES):
        data = await request.body()
    else:
        shown = content_type or "none"
        raise ApiError(415, f"content type {shown!r} not accepted; send multipart/form-data or image/*")
    if len(data) > settings.max_upload_bytes:
        raise PayloadTooLarge(settings.max_upload_bytes)
    if not data:
        raise ApiError(422, "empty upload")
    return data


def create_app(
    detector: Detector | Sequence[Detector],
    settings: ServerSettings | None = None,
) -> FastAPI:
    """The API and page around ``detector`` (or several detectors sharing one model: one per parallel worker)."""
    settings = settings or ServerSettings()
    detectors = [detector] if isinstance(detector, Detector) else list(detector)
    pool = DetectorPool(detectors, max_queue=settings.max_queue, timeout_s=settings.queue_timeout_s)
    hub = StreamHub(pool, settings)
    first = detectors[0]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Load each face detector and run each model once now, so the first request is not the slow one.
        blank = np.full((64, 64, 3), 128, np.uint8)
        for worker in detectors:
            await anyio.to_thread.run_sync(worker.predict_image, blank)
            await anyio.to_thread.run_sync(worker.classify, [blank])
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="facexpr",
        version=__version__,
        description="Face expression recognition (ResEmoteNet): find every face in an image and classify it.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings, app.state.pool, app.state.hub = settings, pool, hub
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_upload_bytes + _MULTIPART_SLACK, shown_limit=settings.max_upload_bytes
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )

    errors = {status: {"model": ErrorResponse} for status in (413, 415, 422, 503)}

    @app.post("/v1/predict", response_model=None, responses={200: {"model": PredictResponse}, **errors},
              openapi_extra={"requestBody": _UPLOAD_BODY}, tags=["predict"])  # fmt: skip
    async def predict(
        request: Request,
        annotated: bool = Query(False, description="also return the image with boxes and labels (base64 JPEG)"),
    ) -> dict[str, Any]:
        """Every face in one image (multipart field ``file``, or the raw image as the body)."""
        data = await _read_upload(request, settings)
        return await pool.run(
            lambda worker: analyse_image(worker, data, max_pixels=settings.max_pixels, annotated=annotated)
        )

    @app.get("/v1/health", tags=["service"])
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": first.config.name,
            "workers": pool.size,
            "running": pool.running,
            "waiting": pool.waiting,
            "streams": hub.active,
        }

    @app.get("/v1/model", tags=["service"])
    async def model() -> dict[str, Any]:
        """Model name, classes, input configuration, validation metrics and upload limits."""
        return model_info(first, settings)

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        await hub.serve(websocket)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
