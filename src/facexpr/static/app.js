// facexpr web page: live camera over WebSocket, image upload, session timeline and CSV.
// Plain browser APIs only (getUserMedia, canvas, WebSocket, fetch), so it runs in Chromium and Firefox alike.
"use strict";

const MAX_FPS = 20;            // frames sent per second at most
const MAX_IN_FLIGHT = 2;       // unanswered frames before the page waits (the server keeps only the newest)
const FRAME_WIDTH = 640;       // frames are scaled down to this width before JPEG encoding
const JPEG_QUALITY = 0.75;
const STALL_MS = 3000;         // resume sending if no answer came for this long
const MAX_ROWS = 50000;        // session rows kept for the CSV (oldest dropped beyond)
const MAX_POINTS = 4000;       // timeline points kept (halved when full)
const CSV_FIELDS = ["source", "frame", "time", "face", "track_id", "x", "y", "w", "h", "detector_score", "label", "score"];

const $ = (id) => document.getElementById(id);
const state = {
  classes: ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"],
  colors: {},
  stream: null,
  socket: null,
  timer: null,
  sentId: 0,
  answeredId: 0,
  lastAnswerAt: 0,
  lastSendAt: 0,
  sentAt: new Map(),
  answerTimes: [],
  sessionStart: performance.now(),
  rows: [],
  points: [],
  captureCanvas: document.createElement("canvas"),
  lastFaces: [],
  lastFrameSize: [1, 1],
};

function colorOf(name) {
  return state.colors[name] || "#b4b4b4";
}

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${response.status}: ${body.error}`;
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

// ---- model info --------------------------------------------------------------------------------
async function loadModel() {
  try {
    const response = await fetch("v1/model");
    if (!response.ok) throw new Error(await errorText(response));
    const info = await response.json();
    state.classes = info.classes;
    state.colors = info.colors || {};
    const metrics = Object.entries(info.val_metrics || {})
      .filter(([, value]) => typeof value === "number")
      .map(([key, value]) => `${key} ${value.toFixed(3)}`);
    $("model-info").textContent = [`model ${info.name}`, `backend ${info.backend}`, ...metrics].join(" · ");
  } catch (error) {
    $("model-info").textContent = `model info unavailable (${error.message})`;
  }
  renderLegend();
}

// ---- face cards (live and upload) --------------------------------------------------------------
function faceCard(face) {
  const item = document.createElement("li");
  item.className = "face";
  const title = document.createElement("div");
  title.className = "face-title";
  const name = document.createElement("span");
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = colorOf(face.label);
  name.append(swatch, face.track_id !== undefined ? `#${face.track_id} ${face.label}` : `${face.index + 1}. ${face.label}`);
  const score = document.createElement("span");
  score.textContent = `${Math.round(face.score * 100)}%`;
  title.append(name, score);
  item.append(title);
  for (const cls of state.classes) {
    const p = face.scores[cls] ?? 0;
    const row = document.createElement("div");
    row.className = "bar";
    const label = document.createElement("span");
    label.textContent = cls;
    const track = document.createElement("div");
    track.className = "bar-track";
    const fill = document.createElement("div");
    fill.className = "bar-fill";
    fill.style.width = `${(p * 100).toFixed(1)}%`;
    fill.style.background = colorOf(cls);
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = `${Math.round(p * 100)}%`;
    row.append(label, track, value);
    item.append(row);
  }
  return item;
}

function renderFaces(list, faces, emptyText) {
  list.replaceChildren();
  if (!faces.length && emptyText) {
    const item = document.createElement("li");
    item.className = "empty";
    item.textContent = emptyText;
    list.append(item);
    return;
  }
  faces.forEach((face, index) => list.append(faceCard({ ...face, index })));
}

// ---- overlay -----------------------------------------------------------------------------------
function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  return ratio;
}

function drawOverlay() {
  const canvas = $("overlay");
  const ratio = fitCanvas(canvas);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const [frameWidth, frameHeight] = state.lastFrameSize;
  const sx = canvas.width / frameWidth;
  const sy = canvas.height / frameHeight;
  const font = Math.round(13 * ratio);
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const face of state.lastFaces) {
    const [x, y, w, h] = face.box;
    const left = x * sx, top = y * sy, width = w * sx, height = h * sy;
    const color = colorOf(face.label);
    ctx.lineWidth = Math.max(2, 2.5 * ratio);
    ctx.strokeStyle = color;
    ctx.strokeRect(left, top, width, height);

    const caption = `${face.track_id !== undefined ? `#${face.track_id} ` : ""}${face.label} ${Math.round(face.score * 100)}%`;
    const pad = 4 * ratio;
    const textWidth = ctx.measureText(caption).width;
    const labelTop = top - font - 2 * pad >= 0 ? top - font - 2 * pad : top;
    ctx.fillStyle = color;
    ctx.fillRect(left - ctx.lineWidth / 2, labelTop, textWidth + 2 * pad, font + 2 * pad);
    ctx.fillStyle = "#11151c";
    ctx.fillText(caption, left + pad - ctx.lineWidth / 2, labelTop + pad);

    // Probability bars beside the box (right side when there is room, else left).
    const rowHeight = Math.round(11 * ratio);
    const barWidth = Math.round(60 * ratio);
    const labelWidth = Math.round(52 * ratio);
    const blockWidth = labelWidth + barWidth + 6 * ratio;
    let bx = left + width + 6 * ratio;
    if (bx + blockWidth > canvas.width) bx = Math.max(0, left - blockWidth - 6 * ratio);
    const barFont = Math.round(9.5 * ratio);
    ctx.font = `${barFont}px system-ui, sans-serif`;
    ctx.fillStyle = "rgba(17, 21, 28, 0.6)";
    ctx.fillRect(bx - 3 * ratio, top - 3 * ratio, blockWidth + 3 * ratio, rowHeight * state.classes.length + 6 * ratio);
    state.classes.forEach((cls, i) => {
      const p = face.scores[cls] ?? 0;
      const rowTop = top + i * rowHeight;
      ctx.fillStyle = "#e9edf3";
      ctx.fillText(cls.slice(0, 8), bx, rowTop + 1);
      ctx.fillStyle = "rgba(255, 255, 255, 0.18)";
      ctx.fillRect(bx + labelWidth, rowTop + 2 * ratio, barWidth, rowHeight - 4 * ratio);
      ctx.fillStyle = colorOf(cls);
      ctx.fillRect(bx + labelWidth, rowTop + 2 * ratio, barWidth * p, rowHeight - 4 * ratio);
    });
    ctx.font = `600 ${font}px system-ui, sans-serif`;
  }
  canvas.dataset.faceCount = String(state.lastFaces.length);
  canvas.dataset.labels = state.lastFaces.map((face) => face.label).join(",");
}

// ---- camera stream -----------------------------------------------------------------------------
function socketUrl() {
  const url = new URL("v1/stream", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

async function startCamera() {
  const status = $("camera-status");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus(status, "This browser gives no camera access here (the page needs https or localhost).", true);
    return;
  }
  $("camera-start").disabled = true;
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (error) {
    setStatus(status, `Camera unavailable: ${error.message || error.name}`, true);
    $("camera-start").disabled = false;
    return;
  }
  const video = $("video");
  video.srcObject = state.stream;
  await new Promise((resolve) => {
    if (video.readyState >= 1) resolve();
    else video.addEventListener("loadedmetadata", resolve, { once: true });
  });
  await video.play().catch(() => {});
  $("stage").style.aspectRatio = `${video.videoWidth || 4} / ${video.videoHeight || 3}`;
  $("placeholder").hidden = true;
  $("camera-stop").disabled = false;
  openSocket();
}

function openSocket() {
  const socket = new WebSocket(socketUrl());
  socket.binaryType = "arraybuffer";
  state.socket = socket;
  state.sentId = state.answeredId = 0;
  state.sentAt.clear();
  socket.addEventListener("open", () => {
    setStatus($("camera-status"), "Streaming to the server.");
    scheduleSend(0);
  });
  socket.addEventListener("message", (event) => onAnswer(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    if (state.socket !== socket) return;
    const reason = event.reason ? ` (${event.reason})` : "";
    setStatus($("camera-status"), `Connection closed${reason}.`, event.code !== 1000);
    stopCamera(false);
  });
  socket.addEventListener("error", () => setStatus($("camera-status"), "WebSocket error.", true));
}

function scheduleSend(delay) {
  clearTimeout(state.timer);
  state.timer = setTimeout(sendFrame, delay);
}

async function sendFrame() {
  const socket = state.socket;
  const video = $("video");
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  const now = performance.now();
  const stalled = now - Math.max(state.lastAnswerAt, state.lastSendAt) > STALL_MS;
  if (stalled) state.answeredId = state.sentId;
  const ready = video.readyState >= 2 && video.videoWidth > 0;
  if (ready && state.sentId - state.answeredId < MAX_IN_FLIGHT && socket.bufferedAmount < 1 << 20) {
    const scale = Math.min(1, FRAME_WIDTH / video.videoWidth);
    const canvas = state.captureCanvas;
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    const jpeg = blob ? new Uint8Array(await blob.arrayBuffer()) : null;
    if (jpeg && state.socket === socket && socket.readyState === WebSocket.OPEN) {
      const id = ++state.sentId;
      const message = new Uint8Array(4 + jpeg.length);
      new DataView(message.buffer).setUint32(0, id, false);
      message.set(jpeg, 4);
      socket.send(message);
      state.sentAt.set(id, performance.now());
      state.lastSendAt = performance.now();
    }
  }
  if (state.socket === socket) scheduleSend(1000 / MAX_FPS);
}

function onAnswer(answer) {
  const now = performance.now();
  if (typeof answer.id === "number") {
    state.answeredId = Math.max(state.answeredId, answer.id);
    const sent = state.sentAt.get(answer.id);
    for (const id of state.sentAt.keys()) if (id <= answer.id) state.sentAt.delete(id);
    if (sent !== undefined) $("latency").textContent = `${Math.round(now - sent)} ms`;
  }
  state.lastAnswerAt = now;
  if (answer.type === "error") {
    setStatus($("camera-status"), `Frame ${answer.id ?? ""}: ${answer.error}`, true);
    return;
  }
  state.answerTimes.push(now);
  while (state.answerTimes.length && now - state.answerTimes[0] > 2000) state.answerTimes.shift();
  const span = state.answerTimes.length > 1 ? (now - state.answerTimes[0]) / 1000 : 0;
  $("fps").textContent = span > 0 ? ((state.answerTimes.length - 1) / span).toFixed(1) : "–";
  $("server-ms").textContent = `${Math.round(answer.time_ms)} ms`;
  $("dropped").textContent = String(answer.dropped);
  $("face-count").textContent = String(answer.faces.length);
  state.lastFaces = answer.faces;
  state.lastFrameSize = [answer.width, answer.height];
  drawOverlay();
  renderFaces($("faces"), answer.faces, "No face in view.");
  record(answer, (now - state.sessionStart) / 1000);
}

function stopCamera(closeSocket = true) {
  clearTimeout(state.timer);
  const socket = state.socket;
  state.socket = null;
  if (closeSocket && socket) socket.close(1000, "camera stopped");
  if (state.stream) state.stream.getTracks().forEach((track) => track.stop());
  state.stream = null;
  $("video").srcObject = null;
  state.lastFaces = [];
  drawOverlay();
  $("placeholder").hidden = false;
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
  if (closeSocket) setStatus($("camera-status"), "Camera stopped.");
}

// ---- session timeline and CSV ------------------------------------------------------------------
function record(answer, seconds) {
  const time = Math.round(seconds * 1000) / 1000;
  for (const face of answer.faces) {
    state.rows.push({ ...face, time });
  }
  if (state.rows.length > MAX_ROWS) state.rows.splice(0, state.rows.length - MAX_ROWS);
  if (answer.faces.length) {
    const largest = answer.faces.reduce((a, b) => (a.box[2] * a.box[3] >= b.box[2] * b.box[3] ? a : b));
    state.points.push({ time, scores: largest.scores });
    if (state.points.length > MAX_POINTS) state.points = state.points.filter((_, i) => i % 2 === 0);
  }
  $("timeline-count").textContent = `${state.rows.length} rows`;
  $("csv-download").disabled = state.rows.length === 0;
  drawTimeline();
}

function renderLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  for (const cls of state.classes) {
    const span = document.createElement("span");
    span.textContent = cls;
    span.style.setProperty("--swatch", colorOf(cls));
    legend.append(span);
  }
}

function drawTimeline() {
  const canvas = $("timeline");
  const ratio = fitCanvas(canvas);
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const left = 34 * ratio, right = width - 8 * ratio, top = 10 * ratio, bottom = height - 22 * ratio;
  ctx.font = `${Math.round(10 * ratio)}px system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  ctx.fillStyle = "#6b7385";
  ctx.strokeStyle = "#e3e6ec";
  ctx.lineWidth = 1;
  for (const p of [0, 0.5, 1]) {
    const y = bottom - p * (bottom - top);
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(right, y);
    ctx.stroke();
    ctx.fillText(p.toFixed(1), 4 * ratio, y);
  }
  const points = state.points;
  if (!points.length) {
    ctx.fillText("Probabilities of the largest face appear here while the camera runs.", left + 8 * ratio, top + 30 * ratio);
    return;
  }
  const t0 = points[0].time;
  const t1 = Math.max(points[points.length - 1].time, t0 + 1);
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (right - left);
  ctx.fillText(`${t0.toFixed(0)} s`, left, height - 8 * ratio);
  const endLabel = `${t1.toFixed(0)} s`;
  ctx.fillText(endLabel, right - ctx.measureText(endLabel).width, height - 8 * ratio);
  ctx.lineWidth = 1.5 * ratio;
  for (const cls of state.classes) {
    ctx.strokeStyle = colorOf(cls);
    ctx.beginPath();
    points.forEach((point, i) => {
      const y = bottom - (point.scores[cls] ?? 0) * (bottom - top);
      if (i === 0) ctx.moveTo(x(point.time), y);
      else ctx.lineTo(x(point.time), y);
    });
    ctx.stroke();
  }
}

function csvCell(value) {
  const text = value === undefined || value === null ? "" : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function downloadCsv() {
  const header = [...CSV_FIELDS, ...state.classes.map((cls) => `p_${cls}`), "error"];
  const lines = [header.join(",")];
  for (const row of state.rows) {
    const [x, y, w, h] = row.box;
    const values = { ...row, x, y, w, h };
    const cells = CSV_FIELDS.map((field) => values[field]);
    cells.push(...state.classes.map((cls) => row.scores[cls]), "");
    lines.push(cells.map(csvCell).join(","));
  }
  const url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = `facexpr-session-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function clearTimeline() {
  state.rows = [];
  state.points = [];
  state.sessionStart = performance.now();
  $("timeline-count").textContent = "0 rows";
  $("csv-download").disabled = true;
  drawTimeline();
}

// ---- upload ------------------------------------------------------------------------------------
async function upload(file) {
  const status = $("upload-status");
  if (!file) return;
  setStatus(status, `Analysing ${file.name}…`);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const response = await fetch("v1/predict?annotated=1", { method: "POST", body: form });
    if (!response.ok) throw new Error(await errorText(response));
    const result = await response.json();
    const image = $("upload-result");
    image.src = `data:image/jpeg;base64,${result.annotated_jpeg}`;
    image.hidden = false;
    image.dataset.faceCount = String(result.faces.length);
    $("upload-hint").hidden = true;
    const count = result.faces.length;
    setStatus(status, `${file.name}: ${count} face${count === 1 ? "" : "s"}, ${result.width}×${result.height}, ${Math.round(result.time_ms)} ms on the server.`);
    renderFaces($("upload-faces"), result.faces, "");
  } catch (error) {
    setStatus(status, `${file.name}: ${error.message}`, true);
  }
}

function setupDropzone() {
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    upload(event.dataTransfer.files[0]);
  });
}

// ---- wiring ------------------------------------------------------------------------------------
window.addEventListener("DOMContentLoaded", () => {
  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", () => stopCamera(true));
  $("upload-input").addEventListener("change", (event) => upload(event.target.files[0]));
  $("csv-download").addEventListener("click", downloadCsv);
  $("timeline-clear").addEventListener("click", clearTimeline);
  window.addEventListener("resize", () => {
    drawOverlay();
    drawTimeline();
  });
  setupDropzone();
  loadModel();
  drawTimeline();
});
