// The drawing page: strokes on a canvas (Pointer Events), sent as a PNG to /api/v1/recognize
// while drawing (debounced) and on release; the reading is shown as text, bars and previews.
// Where the server collects corrections (/api/v1/config), the right digits for the image last
// read can be sent to /api/v1/corrections.
"use strict";

const API = "/api/v1/recognize";
const CORRECTIONS = "/api/v1/corrections";
const DEBOUNCE_MS = 250;

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const dropZone = document.getElementById("drop-zone");
const widthInput = document.getElementById("stroke-width");
const fileInput = document.getElementById("file");
const resultEl = document.getElementById("result");
const statusEl = document.getElementById("status");
const digitsEl = document.getElementById("digits");
const correctionForm = document.getElementById("correction");
const correctInput = document.getElementById("correct-digits");
const correctionStatus = document.getElementById("correction-status");

const state = {
  strokes: [],        // [{width, points: [[x, y], ...]}] in CSS pixels
  background: null,   // an image file drawn under the strokes, if one was dropped
  current: null,      // the stroke being drawn
  timer: 0,
  sequence: 0,        // the latest request; older answers are ignored
  collecting: false,  // whether the server stores corrections
  read: null,         // {blob, name} of the image whose reading is shown
};

// Keep the canvas's pixels matched to its size on screen, then repaint.
function fitCanvas() {
  const rect = pad.getBoundingClientRect();
  const ratio = window.devicePixelRatio || 1;
  pad.width = Math.round(rect.width * ratio);
  pad.height = Math.round(rect.height * ratio);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  redraw();
}

function redraw() {
  const rect = pad.getBoundingClientRect();
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, rect.width, rect.height);
  if (state.background) drawContained(state.background, rect);
  for (const stroke of state.strokes) drawStroke(stroke);
}

function drawContained(image, rect) {
  const scale = Math.min(rect.width / image.width, rect.height / image.height);
  const w = image.width * scale;
  const h = image.height * scale;
  ctx.drawImage(image, (rect.width - w) / 2, (rect.height - h) / 2, w, h);
}

function drawStroke(stroke) {
  const pts = stroke.points;
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = stroke.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  if (pts.length === 1) {
    ctx.beginPath();
    ctx.arc(pts[0][0], pts[0][1], stroke.width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
  ctx.stroke();
}

function pointOf(event) {
  const rect = pad.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 && event.pointerType === "mouse") return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  state.current = { width: Number(widthInput.value), points: [pointOf(event)] };
  state.strokes.push(state.current);
  drawStroke(state.current);
});

pad.addEventListener("pointermove", (event) => {
  if (!state.current) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) state.current.points.push(pointOf(e));
  const pts = state.current.points;
  drawStroke({ width: state.current.width, points: pts.slice(-events.length - 1) });
  scheduleRecognition();
});

function endStroke() {
  if (!state.current) return;
  state.current = null;
  recognizePad();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// aria-busy stays "true" from the first stroke until the answer for the latest drawing is shown.
function setBusy(busy) {
  resultEl.setAttribute("aria-busy", String(busy));
}

function scheduleRecognition() {
  setBusy(true);
  clearTimeout(state.timer);
  state.timer = setTimeout(recognizePad, DEBOUNCE_MS);
}

function recognizePad() {
  clearTimeout(state.timer);
  if (!state.strokes.length && !state.background) {
    showEmpty();
    return;
  }
  setBusy(true);
  pad.toBlob((blob) => send(blob, "pad.png"), "image/png");
}

async function send(blob, name) {
  const sequence = ++state.sequence;
  setBusy(true);
  offerCorrection(null);
  const form = new FormData();
  form.append("image", blob, name);
  statusEl.classList.remove("error");
  statusEl.textContent = "Reading…";
  try {
    const response = await fetch(API, { method: "POST", body: form });
    const body = await response.json();
    if (sequence !== state.sequence) return;
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    showReading(body);
    offerCorrection(body.digits.length ? { blob, name, text: body.text.replaceAll("\n", "") } : null);
  } catch (error) {
    if (sequence !== state.sequence) return;
    statusEl.classList.add("error");
    statusEl.textContent = `Could not read the image: ${error.message}`;
  }
  setBusy(false);
}

function showEmpty() {
  state.sequence++;
  setBusy(false);
  offerCorrection(null);
  resultEl.textContent = "";
  digitsEl.replaceChildren();
  statusEl.classList.remove("error");
  statusEl.textContent = "Draw a digit to start.";
}

function showReading(reading) {
  // One block per line read, top to bottom.
  resultEl.replaceChildren(...reading.lines.map((line) => {
    const row = document.createElement("span");
    row.className = "result-line";
    row.textContent = line.text;
    return row;
  }));
  const count = reading.digits.length;
  const unsure = reading.digits.filter((d) => d.label === null).length;
  statusEl.textContent = count === 0
    ? "No digits found."
    : `${count} digit${count > 1 ? "s" : ""}` + (unsure ? `, ${unsure} too unsure to name (?)` : "");
  digitsEl.replaceChildren(...reading.digits.map((d, i) => digitItem(d, reading.normalized[i])));
}

function digitItem(digit, png) {
  const item = document.createElement("li");
  item.className = "digit";
  const preview = document.createElement("img");
  if (png) {  // the page reader sees lines, not 28 by 28 digits: no preview then
    preview.src = `data:image/png;base64,${png}`;
    preview.alt = `28 by 28 image the model saw for digit ${digit.label ?? "?"}`;
  } else {
    preview.alt = "";
    preview.hidden = true;
  }
  preview.width = 56;
  preview.height = 56;
  const bars = document.createElement("ul");
  bars.className = "bars";
  for (const [label, probability] of digit.top.slice(0, 3)) {
    const percent = (100 * probability).toFixed(1);
    const row = document.createElement("li");
    row.className = "bar-row";
    row.setAttribute("aria-label", `${label}: ${percent} percent`);
    row.innerHTML = `<span>${label}</span><span class="track"><span class="fill"></span></span>` +
      `<span class="value">${percent}%</span>`;
    row.querySelector(".fill").style.width = `${percent}%`;
    bars.append(row);
  }
  item.append(preview, bars);
  return item;
}

// The correction form, for the image just read (shown only if the server collects them).
function offerCorrection(read) {
  state.read = read;
  correctionForm.hidden = !(state.collecting && read);
  correctionStatus.textContent = "";
  correctionStatus.classList.remove("error");
  if (read) correctInput.value = read.text;
}

async function sendCorrection(event) {
  event.preventDefault();
  if (!state.read) return;
  const form = new FormData();
  form.append("image", state.read.blob, state.read.name);
  form.append("digits", correctInput.value);
  correctionStatus.classList.remove("error");
  correctionStatus.textContent = "Sending…";
  try {
    const response = await fetch(CORRECTIONS, { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    const count = body.stored.length;
    correctionStatus.textContent =
      `Thank you: ${count} digit${count > 1 ? "s" : ""} stored to train on.`;
  } catch (error) {
    correctionStatus.classList.add("error");
    correctionStatus.textContent = `Not stored: ${error.message}`;
  }
}

function undo() {
  if (state.strokes.length) state.strokes.pop();
  else state.background = null;
  redraw();
  recognizePad();
}

function clearPad() {
  state.strokes = [];
  state.background = null;
  redraw();
  showEmpty();
}

function readFile(file) {
  if (!file) return;
  state.strokes = [];
  const image = new Image();
  image.onload = () => {
    state.background = image;
    redraw();
    URL.revokeObjectURL(image.src);
  };
  image.src = URL.createObjectURL(file);
  send(file, file.name);
}

document.getElementById("undo").addEventListener("click", undo);
correctionForm.addEventListener("submit", sendCorrection);
document.getElementById("clear").addEventListener("click", clearPad);
fileInput.addEventListener("change", () => {
  readFile(fileInput.files[0]);
  fileInput.value = "";
});
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  } else if (event.key === "Escape") {
    clearPad();
  }
});

for (const type of ["dragenter", "dragover"]) {
  dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  dropZone.addEventListener(type, () => dropZone.classList.remove("dragging"));
}
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  readFile(event.dataTransfer.files[0]);
});

async function showModelCard() {
  const el = document.getElementById("model-card");
  try {
    const card = await (await fetch("/api/v1/model")).json();
    const accuracy = typeof card.test_accuracy === "number"
      ? `, ${(100 * card.test_accuracy).toFixed(2)}% on MNIST test` : "";
    el.textContent = `Model: ${card.name ?? "unknown"}${accuracy}`;
  } catch {
    el.textContent = "Model: unavailable";
  }
}

async function loadConfig() {
  try {
    state.collecting = (await (await fetch("/api/v1/config")).json()).corrections === true;
  } catch {
    state.collecting = false;
  }
  correctionForm.hidden = !(state.collecting && state.read);
}

window.addEventListener("resize", fitCanvas);
fitCanvas();
showModelCard();
loadConfig();
