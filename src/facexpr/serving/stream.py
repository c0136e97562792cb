"""``WS /v1/stream``: camera frames in, faces out, answering only the newest frame.

Protocol: each binary message is a 4-byte big-endian frame id followed by one encoded image (JPEG from the page).
Each answer is JSON: ``{"type": "faces", "id", "faces", "width", "height", "time_ms", "model", "received",
"dropped"}``, or ``{"type": "error", "id", "error"}`` for a frame that could not be used (the stream goes on).
While a frame is being analysed, newer frames replace each other in a one-frame slot, so a client that sends
faster than the server answers gets answers for the latest frames and never waits behind a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from dataclasses import dataclass

from fastapi import WebSocket, WebSocketDisconnect

from facexpr.detection.tracking import FaceTracker
from facexpr.preprocessing import ImageError
from facexpr.serving.errors import ApiError
from facexpr.serving.inference import DetectorPool, analyse_image
from facexpr.serving.settings import ServerSettings

log = logging.getLogger("facexpr")

FRAME_HEADER = struct.Struct(">I")
# WebSocket close code 1013: "try again later".
CLOSE_TRY_LATER = 1013


@dataclass
class _Frame:
    frame_id: int
    data: bytes
    arrived: float


class StreamSession:
    """One connection: a receiver that keeps only the latest frame, and an answerer that analyses it."""

    def __init__(self, websocket: WebSocket, pool: DetectorPool, settings: ServerSettings) -> None:
        self.websocket, self.pool, self.settings = websocket, pool, settings
        self.tracker = FaceTracker(alpha=settings.stream_smoothing)
        self.latest: _Frame | None = None
        self.ready = asyncio.Event()
        self.closed = False
        self.received = 0
        self.dropped = 0
        self.started = time.monotonic()
        self._send_lock = asyncio.Lock()  # the receiver (errors) and the answerer both send

    async def run(self) -> None:
        receiver = asyncio.create_task(self._receive())
        try:
            await self._answer()
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await receiver

    async def _receive(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    await self._send_error(None, "send binary messages: 4-byte big-endian frame id + JPEG bytes")
                    continue
                if len(data) <= FRAME_HEADER.size:
                    await self._send_error(None, f"frame of {len(data)} bytes has no image after its 4-byte id")
                    continue
                (frame_id,) = FRAME_HEADER.unpack_from(data)
                if len(data) - FRAME_HEADER.size > self.settings.max_upload_bytes:
                    await self._send_error(frame_id, f"frame larger than {self.settings.max_upload_bytes:,} bytes")
                    continue
                self.received += 1
                if self.latest is not None:
                    self.dropped += 1
                self.latest = _Frame(frame_id, data[FRAME_HEADER.size :], time.monotonic() - self.started)
                self.ready.set()
        finally:
            self.closed = True
            self.ready.set()

    async def _answer(self) -> None:
        while True:
            await self.ready.wait()
            self.ready.clear()
            frame, self.latest = self.latest, None
            if frame is None:
                if self.closed:
                    return
                continue
            try:
                result = await self.pool.run(
                    lambda detector, frame=frame: analyse_image(
                        detector,
                        frame.data,
                        max_pixels=self.settings.max_pixels,
                        source="stream",
                        frame=frame.frame_id,
                        time_s=round(frame.arrived, 3),
                        tracker=self.tracker,
                    )
                )
            except (ImageError, ApiError) as exc:
                await self._send_error(frame.frame_id, str(exc))
                continue
            except Exception as exc:  # one unusable frame must not end the stream
                log.exception("stream frame %d failed", frame.frame_id)
                await self._send_error(frame.frame_id, f"internal error ({exc.__class__.__name__})")
                continue
            await self._send(
                {"type": "faces", "id": frame.frame_id, **result, "received": self.received, "dropped": self.dropped}
            )
            if self.closed:
                return

    async def _send_error(self, frame_id: int | None, message: str) -> None:
        await self._send({"type": "error", "id": frame_id, "error": message})

    async def _send(self, payload: dict) -> None:
        if self.closed:
            return
        async with self._send_lock:
            await self.websocket.send_json(payload)


class StreamHub:
    """Accepts at most ``settings.max_streams`` connections at once; more are closed with code 1013."""

    def __init__(self, pool: DetectorPool, settings: ServerSettings) -> None:
        self.pool, self.settings = pool, settings
        self.active = 0

    async def serve(self, websocket: WebSocket) -> None:
        if self.active >= self.settings.max_streams:
            await websocket.close(code=CLOSE_TRY_LATER, reason=f"at most {self.settings.max_streams} streams")
            return
        self.active += 1
        try:
            await websocket.accept()
            await StreamSession(websocket, self.pool, self.settings).run()
        except WebSocketDisconnect:
            pass
        except RuntimeError as exc:  # sending after the client went away
            log.debug("stream closed: %s", exc)
        finally:
            self.active -= 1
