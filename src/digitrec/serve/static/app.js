// The drawing page: strokes on a canvas (Pointer Events), sent as a PNG to /api/v1/recognize
// while drawing (debounced) and on release, or an image file picked or dropped. The reading is
// shown line by line; the boxes of its lines and digits are drawn over the image, and each
// digit has a card (its crop, cut here from the image sent, and its likeliest labels), grouped
// by line. Hovering or tapping a box marks its card, and the other way round. Where the server
// collects corrections (/api/v1/config), the right text for the image last read can be sent to
// /api/v1/corrections with the options it was read with.
"use strict";

const API = "/api/v1/recognize";
const CORRECTIONS = "/api/v1/corrections";
const DEBOUNCE_MS = 250;
const READ_OPTIONS = new URLSearchParams();  // the reader's defaults; corrections send the same
const OPEN_DIGITS = 12;  // the lines' cards start open up to this many digits in all, else closed
const CROP_SIDE = 56;  // CSS pixels of a digit's crop on its card
const TAP_PX = 6;  // a stroke shorter than this on a box is a tap that marks the box
const SVG = "http://www.w3.org/2000/svg";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const dropZone = document.getElementById("drop-zone");
const boxesEl = document.getElementById("boxes");
const widthInput = document.getElementById("stroke-width");
const fileInput = document.getElementById("file");
const resultEl = document.getElementById("result");
const statusEl = document.getElementById("status");
const linesEl = document.getElementById("lines");
const correctionForm = document.getElementById("correction");
const correctInput = document.getElementById("correct-digits");
const correctionStatus = document.getElementById("correction-status");

const state = {
  strokes: [],        // [{width, points: [[x, y], ...]}] in CSS pixels of the pad
  background: null,   // an image file drawn under the strokes, if one was picked or dropped
  current: null,      // the stroke being drawn
  timer: 0,
  sequence: 0,        // the latest request; older answers are ignored
  collecting: false,  // whether the server stores corrections
  shown: null,        // {blob, name, width, height, fromPad, bitmap, reading} of the reading shown
  marked: -1,         // the digit whose box and card are marked
};

// --- the pad ---------------------------------------------------------------------------------

// Keep the canvas's pixels matched to its size on screen, then repaint.
function fitCanvas() {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(pad.clientWidth * ratio);
  const height = Math.round(pad.clientHeight * ratio);
  const changed = width !== pad.width || height !== pad.height;
  pad.width = width;
  pad.height = height;
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  redraw();
  fitResult();
  if (state.shown?.fromPad && changed) recognizePad();  // its boxes were in the old pixels
  else placeBoxes();
}

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.clientWidth, pad.clientHeight);
  if (state.background) {
    const r = containedRect(state.background.width, state.background.height);
    ctx.drawImage(state.background, r.left, r.top, r.width, r.height);
  }
  for (const stroke of state.strokes) drawStroke(stroke);
}

// Where an image of width × height pixels is shown on the pad, scaled to fit, in CSS pixels.
function containedRect(width, height) {
  const scale = Math.min(pad.clientWidth / width, pad.clientHeight / height);
  const w = width * scale;
  const h = height * scale;
  return { left: (pad.clientWidth - w) / 2, top: (pad.clientHeight - h) / 2, width: w, height: h };
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
  return [event.clientX - rect.left - pad.clientLeft, event.clientY - rect.top - pad.clientTop];
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
  if (!state.current) {
    if (event.pointerType === "mouse") mark(digitAt(pointOf(event)), false);
    return;
  }
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) state.current.points.push(pointOf(e));
  const pts = state.current.points;
  drawStroke({ width: state.current.width, points: pts.slice(-events.length - 1) });
  if (!isTap(state.current)) {
    clearBoxes();  // the boxes of the last reading no longer fit what is drawn
    scheduleRecognition();
  }
});

pad.addEventListener("pointerleave", () => {
  if (!state.current) mark(-1, false);
});

function endStroke() {
  const stroke = state.current;
  if (!stroke) return;
  state.current = null;
  const tapped = isTap(stroke) ? digitAt(stroke.points[0]) : -1;
  if (tapped >= 0) {  // a tap on a digit's box marks it, and draws nothing
    state.strokes.pop();
    redraw();
    mark(tapped, true);
    return;
  }
  recognizePad();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// Whether a stroke has stayed within TAP_PX of where it began (remembered once it has not).
function isTap(stroke) {
  if (stroke.moved) return false;
  const [x0, y0] = stroke.points[0];
  const [x, y] = stroke.points[stroke.points.length - 1];
  stroke.moved = Math.hypot(x - x0, y - y0) >= TAP_PX;
  return !stroke.moved;
}

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
  pad.toBlob((blob) => send(blob, "pad.png", true), "image/png");
}

function withOptions(url) {
  return READ_OPTIONS.size ? `${url}?${READ_OPTIONS}` : url;
}

// --- reading ---------------------------------------------------------------------------------

// Read an image (``fromPad``: the pad's drawing), and show the reading with the image's pixels
// (for the crops and boxes; none where the browser cannot decode what the server could).
async function send(blob, name, fromPad) {
  const sequence = ++state.sequence;
  setBusy(true);
  const form = new FormData();
  form.append("image", blob, name);
  statusEl.classList.remove("error");
  statusEl.textContent = "Reading…";
  try {
    const response = await fetch(withOptions(API), { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    const bitmap = await createImageBitmap(blob).catch(() => null);
    if (sequence !== state.sequence) return;
    const size = { width: bitmap?.width ?? 0, height: bitmap?.height ?? 0 };
    showReading({ ...size, blob, name, fromPad, bitmap, reading: body });
  } catch (error) {
    if (sequence !== state.sequence) return;
    clearReading();
    statusEl.classList.add("error");
    statusEl.textContent = `Could not read the image: ${error.message}`;
  }
  setBusy(false);
}

function showEmpty() {
  state.sequence++;
  setBusy(false);
  clearReading();
  statusEl.classList.remove("error");
  statusEl.textContent = "Draw a digit to start.";
}

// No reading on the page: its text, boxes, cards and correction form cleared.
function clearReading() {
  state.shown = null;
  state.marked = -1;
  resultEl.replaceChildren();
  resultEl.style.fontSize = "";
  linesEl.replaceChildren();
  clearBoxes();
  offerCorrection();
}

function showReading(shown) {
  const reading = shown.reading;
  state.shown = shown;
  state.marked = -1;
  resultEl.replaceChildren(...reading.lines.map((line) => {
    const row = document.createElement("span");
    row.className = "result-line";
    row.textContent = line.text;
    return row;
  }));
  fitResult();
  const count = reading.digits.length;
  const unsure = reading.digits.filter((d) => d.label === null).length;
  const lines = reading.lines.length;
  statusEl.textContent = count === 0
    ? "No digits found."
    : `${plural(count, "digit")}${lines > 1 ? ` on ${lines} lines` : ""}` +
      (unsure ? `, ${unsure} too unsure to name (?)` : "");
  let first = 0;
  linesEl.replaceChildren(...reading.lines.map((line, k) => {
    const group = lineGroup(line, k, first, count <= OPEN_DIGITS);
    first += line.digits.length;
    return group;
  }));
  drawBoxes(reading);
  offerCorrection();
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

// The reading's text in as large a font as lets its longest line fit, never wrapped.
function fitResult() {
  resultEl.style.fontSize = "";
  const overflow = resultEl.scrollWidth / Math.max(resultEl.clientWidth, 1);
  if (overflow > 1) {
    const size = parseFloat(getComputedStyle(resultEl).fontSize);
    resultEl.style.fontSize = `${Math.max(16, Math.floor(size / overflow))}px`;
  }
}

// One line's cards, in a group that opens and closes.
function lineGroup(line, index, first, open) {
  const group = document.createElement("details");
  group.className = "line-group";
  group.open = open;
  const summary = document.createElement("summary");
  const name = document.createElement("span");
  name.className = "line-name";
  name.textContent = `Line ${index + 1}`;
  const text = document.createElement("span");
  text.className = "line-text";
  text.textContent = line.text;
  const count = document.createElement("span");
  count.className = "line-count";
  count.textContent = plural(line.digits.length, "digit");
  summary.append(name, text, count);
  const list = document.createElement("ol");
  list.className = "digits";
  list.setAttribute("aria-label", `The digits of line ${index + 1}`);
  list.append(...line.digits.map((digit, k) => digitCard(digit, first + k)));
  group.append(summary, list);
  return group;
}

function digitCard(digit, index) {
  const item = document.createElement("li");
  item.className = "digit";
  item.tabIndex = 0;
  item.dataset.digit = String(index);
  const name = digit.label ?? "?";
  item.setAttribute("aria-label", `Digit ${index + 1}: ${name}`);
  const crop = cropOf(digit.box);
  crop.className = "crop";
  crop.setAttribute("role", "img");
  crop.setAttribute("aria-label", `digit ${name} as written`);
  const images = [crop];
  const png = state.shown.reading.normalized[index];
  if (png) {  // the page reader sees lines, not 28 by 28 digits: no such image then
    const seen = document.createElement("img");
    seen.className = "seen";
    seen.src = `data:image/png;base64,${png}`;
    seen.alt = `28 by 28 image the model saw for digit ${name}`;
    seen.width = CROP_SIDE;
    seen.height = CROP_SIDE;
    images.push(seen);
  }
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
  item.append(...images, bars);
  item.addEventListener("pointerenter", () => mark(index, false));
  item.addEventListener("pointerleave", () => mark(-1, false));
  item.addEventListener("focus", () => mark(index, false));
  item.addEventListener("blur", () => mark(-1, false));
  return item;
}

// The digit's part of the image that was read, with a little paper around it, on a canvas.
function cropOf(box) {
  const { bitmap, width, height } = state.shown;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = CROP_SIDE;
  if (!bitmap) return canvas;
  const [x0, y0, x1, y1] = box;
  const margin = Math.round(0.1 * Math.max(x1 - x0, y1 - y0)) + 1;
  const sx = Math.max(0, x0 - margin);
  const sy = Math.max(0, y0 - margin);
  const sw = Math.min(width, x1 + margin) - sx;
  const sh = Math.min(height, y1 + margin) - sy;
  const ratio = window.devicePixelRatio || 1;
  const scale = Math.min(CROP_SIDE / sw, CROP_SIDE / sh);
  canvas.width = Math.round(CROP_SIDE * ratio);
  canvas.height = Math.round(CROP_SIDE * ratio);
  const crop = canvas.getContext("2d");
  crop.fillStyle = "#fff";
  crop.fillRect(0, 0, canvas.width, canvas.height);
  const w = sw * scale * ratio;
  const h = sh * scale * ratio;
  crop.drawImage(bitmap, sx, sy, sw, sh, (canvas.width - w) / 2, (canvas.height - h) / 2, w, h);
  return canvas;
}

// --- boxes over the image ----------------------------------------------------------------------

function clearBoxes() {
  boxesEl.replaceChildren();
  boxesEl.toggleAttribute("hidden", true);
}

// The boxes of the reading's lines and digits, in the pixels of the image that was read.
function drawBoxes(reading) {
  const { width, height } = state.shown;
  if (!width) return;  // the browser could not show the image
  boxesEl.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const rects = [
    ...reading.lines.map((line) => boxRect(line.box, "line-box")),
    ...reading.digits.map((digit, i) => {
      const rect = boxRect(digit.box, "digit-box");
      rect.dataset.digit = String(i);
      return rect;
    }),
  ];
  boxesEl.replaceChildren(...rects);
  boxesEl.toggleAttribute("hidden", rects.length === 0);
  placeBoxes();
}

function boxRect([x0, y0, x1, y1], className) {
  const rect = document.createElementNS(SVG, "rect");
  rect.setAttribute("class", className);
  for (const [name, value] of [["x", x0], ["y", y0], ["width", x1 - x0], ["height", y1 - y0]]) {
    rect.setAttribute(name, String(value));
  }
  return rect;
}

// Lay the boxes over the image as it is shown now: the whole pad, or the picked file's place.
function placeBoxes() {
  if (!state.shown) return;
  const { width, height, fromPad } = state.shown;
  const r = fromPad
    ? { left: 0, top: 0, width: pad.clientWidth, height: pad.clientHeight }
    : containedRect(width, height);
  boxesEl.style.left = `${pad.offsetLeft + pad.clientLeft + r.left}px`;
  boxesEl.style.top = `${pad.offsetTop + pad.clientTop + r.top}px`;
  boxesEl.style.width = `${r.width}px`;
  boxesEl.style.height = `${r.height}px`;
}

// The digit whose box holds a point of the pad (CSS pixels), or -1.
function digitAt([x, y]) {
  if (!state.shown || boxesEl.hasAttribute("hidden")) return -1;
  const { width, height, fromPad } = state.shown;
  const r = fromPad
    ? { left: 0, top: 0, width: pad.clientWidth, height: pad.clientHeight }
    : containedRect(width, height);
  const u = ((x - r.left) * width) / r.width;
  const v = ((y - r.top) * height) / r.height;
  return state.shown.reading.digits.findIndex(
    ({ box: [x0, y0, x1, y1] }) => u >= x0 && u < x1 && v >= y0 && v < y1,
  );
}

// Mark one digit's box and card (-1: none); ``reveal`` opens its line and scrolls to its card.
function mark(index, reveal) {
  if (index === state.marked && !reveal) return;
  state.marked = index;
  for (const el of document.querySelectorAll("[data-digit].marked")) el.classList.remove("marked");
  if (index < 0) return;
  const card = linesEl.querySelector(`.digit[data-digit="${index}"]`);
  boxesEl.querySelector(`[data-digit="${index}"]`)?.classList.add("marked");
  card?.classList.add("marked");
  if (reveal && card) {
    card.closest("details").open = true;
    card.scrollIntoView({ block: "nearest" });
  }
}

// --- corrections -----------------------------------------------------------------------------

// The correction form, for the image whose reading is shown (only if the server collects them).
function offerCorrection() {
  const shown = state.shown;
  const offered = state.collecting && shown !== null && shown.reading.digits.length > 0;
  correctionForm.hidden = !offered;
  correctionStatus.textContent = "";
  correctionStatus.classList.remove("error");
  if (!offered) return;
  correctInput.value = shown.reading.text;
  correctInput.rows = Math.min(Math.max(shown.reading.lines.length, 1), 6);
}

async function sendCorrection(event) {
  event.preventDefault();
  const shown = state.shown;
  if (!shown) return;
  correctionStatus.classList.remove("error");
  if (/[^0-9\s]/.test(correctInput.value)) {
    correctionStatus.classList.add("error");
    correctionStatus.textContent =
      "Type only digits, spaces and line breaks: replace each ? with the digit it is.";
    return;
  }
  const form = new FormData();
  form.append("image", shown.blob, shown.name);
  form.append("digits", correctInput.value);
  correctionStatus.textContent = "Sending…";
  try {
    const response = await fetch(withOptions(CORRECTIONS), { method: "POST", body: form });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    const stored = [];
    if (body.stored.length) stored.push(plural(body.stored.length, "digit"));
    if (body.lines.length) stored.push(plural(body.lines.length, "line"));
    correctionStatus.textContent = `Thank you: ${stored.join(" and ")} stored to train on.`;
  } catch (error) {
    correctionStatus.classList.add("error");
    correctionStatus.textContent = `Not stored: ${error.message}`;
  }
}

// --- controls --------------------------------------------------------------------------------

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

// A picked or dropped file replaces what was on the pad, and is read as it is.
function readFile(file) {
  if (!file) return;
  state.strokes = [];
  state.background = null;
  redraw();
  clearReading();
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.onload = () => {
    URL.revokeObjectURL(url);
    state.background = image;
    redraw();
    placeBoxes();
  };
  image.onerror = () => URL.revokeObjectURL(url);
  image.src = url;
  send(file, file.name, false);
}

document.getElementById("undo").addEventListener("click", undo);
correctionForm.addEventListener("submit", sendCorrection);
document.getElementById("clear").addEventListener("click", clearPad);
fileInput.addEventListener("change", () => {
  readFile(fileInput.files[0]);
  fileInput.value = "";
});
document.addEventListener("keydown", (event) => {
  if (event.target === correctInput) return;  // typing a correction
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

// What reads the images: the classifier and the page reader (the model card).
async function showModelCard() {
  const el = document.getElementById("model-card");
  try {
    const card = await (await fetch("/api/v1/model")).json();
    const accuracy = typeof card.test_accuracy === "number"
      ? `, ${(100 * card.test_accuracy).toFixed(2)}% on MNIST test` : "";
    const pages = card.page_reader ?? "none (the classifier reads every image)";
    el.textContent = `Classifier: ${card.classifier}, ${card.name ?? "unknown"}${accuracy}` +
      ` · page reader: ${pages}`;
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
  offerCorrection();
}

window.addEventListener("resize", fitCanvas);
fitCanvas();
showModelCard();
loadConfig();
