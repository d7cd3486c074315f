// numbre's drawing page: a pad driven by pointer events, answers from /api/predict and /api/read.
//
// The pad is a fixed-size canvas (280x280 for a digit, 560x280 for a number) scaled by CSS, so the
// server always gets a canvas-sized PNG whatever the screen. Strokes are kept as point lists, which
// makes undo a redraw. The page asks while the pen moves (at most every THROTTLE_MS) and once more
// when it lifts. While drawing, each answer newer than the one shown is shown, even if the drawing
// has grown since; clearing, undoing, uploading or switching mode voids every answer still on its
// way. #result's data-state says where things stand: empty, pending (the drawing as it is now is
// not answered yet), done or error.
//
// "Show what mattered" lays /api/saliency's heat map over the 28x28 view, for one digit only. It
// costs tens of milliseconds, so it is asked once the answer to the finished drawing is shown, not
// while the pen moves. #seen-figure's data-saliency: off, pending, shown, none (nothing to explain)
// or error.
"use strict";

const PEN = 18;            // stroke width in pad pixels: MNIST's stroke is about 1/14 of its box
const THROTTLE_MS = 200;   // while drawing: at most one request this often
const SETTLE_MS = 60;      // after the pen lifts: ask almost at once
const SIZES = { digit: [280, 280], number: [560, 280] };
const MESSAGES = {
  emptyPad: { digit: "Draw a digit in the box.", number: "Write a number in the box, digits side by side." },
  empty: "The image is empty: there is no ink to read.",
  "not a digit": "That does not look like a digit.",
  "several digits": "That looks like several digits: switch to \u201cA number\u201d.",
  numberNotDigit: "Some of that is not a digit (marked ?).",
};

const $ = (id) => document.getElementById(id);
const pad = $("pad"), boxes = $("boxes"), frame = $("pad-frame"), result = $("result");
const ctx = pad.getContext("2d");
const seenFigure = $("seen-figure"), overlay = $("saliency"), saliencyToggle = $("show-saliency");
const boxCtx = boxes.getContext("2d");

let mode = "digit";
let strokes = [];          // [[{x, y}, ...], ...] in pad pixels
let current = null;        // the stroke being drawn
let upload = null;         // {file, bitmap, fit: {scale, x, y}} while an uploaded image is shown
let timer = null;          // pending request
let generation = 0;        // bumped by every change to what is on the pad
let sent = 0, shown = 0;   // numbers of the last request sent and of the one whose answer is shown
let epoch = new AbortController();   // replaced (and aborted) when the pad is cleared, undone or switched

// --- the pad ---------------------------------------------------------------------------------

function resetPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  boxCtx.clearRect(0, 0, boxes.width, boxes.height);
}

function styleInk() {
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = PEN;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

function drawStroke(points) {
  styleInk();
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(points[0].x, points[0].y, PEN / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(points[0].x, points[0].y);
  for (const point of points.slice(1)) ctx.lineTo(point.x, point.y);
  ctx.stroke();
}

function redraw() {
  resetPad();
  if (upload) drawUpload();
  for (const stroke of strokes) drawStroke(stroke);
}

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return {
    x: (event.clientX - rect.left) * (pad.width / rect.width),
    y: (event.clientY - rect.top) * (pad.height / rect.height),
  };
}

pad.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  if (upload) { newEpoch(); upload = null; redraw(); }
  pad.setPointerCapture(event.pointerId);
  current = [padPoint(event)];
  strokes.push(current);
  drawStroke(current);
  changed(THROTTLE_MS, true);
});

pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  event.preventDefault();
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  const start = current.length - 1;
  for (const each of events.length ? events : [event]) current.push(padPoint(each));
  drawStroke(current.slice(start));   // only the new segment: redrawing the whole stroke darkens joins
  changed(THROTTLE_MS, true);
});

function endStroke(event) {
  if (!current) return;
  current = null;
  if (pad.hasPointerCapture(event.pointerId)) pad.releasePointerCapture(event.pointerId);
  changed(SETTLE_MS);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("contextmenu", (event) => event.preventDefault());

function undo() {
  if (upload) { clearAll(); return; }
  if (!strokes.length) return;
  newEpoch();
  strokes.pop();
  redraw();
  changed(SETTLE_MS);
}

function clearAll() {
  newEpoch();
  strokes = [];
  current = null;
  upload = null;
  $("upload").value = "";
  redraw();
  changed(0);
}

function setMode(next) {
  if (next === mode) return;
  newEpoch();
  mode = next;
  $("mode-digit").setAttribute("aria-pressed", String(mode === "digit"));
  $("mode-number").setAttribute("aria-pressed", String(mode === "number"));
  const [width, height] = SIZES[mode];
  pad.width = boxes.width = width;      // resizing a canvas clears it, so drawings start afresh
  pad.height = boxes.height = height;
  frame.dataset.mode = result.dataset.mode = mode;
  const kept = upload;
  strokes = [];
  upload = kept ? { ...kept, fit: fitInto(kept.bitmap) } : null;
  redraw();
  changed(0);
}

// --- uploads ---------------------------------------------------------------------------------

function fitInto(bitmap) {
  if (!bitmap) return null;
  const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
  return { scale, x: (pad.width - bitmap.width * scale) / 2, y: (pad.height - bitmap.height * scale) / 2 };
}

function drawUpload() {
  if (upload.bitmap) {
    const { scale, x, y } = upload.fit;
    ctx.drawImage(upload.bitmap, x, y, upload.bitmap.width * scale, upload.bitmap.height * scale);
  } else {   // a format the browser cannot show (TIFF, say) may still be one the server reads
    ctx.fillStyle = "#5b6570";
    ctx.font = "16px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(upload.file.name || "uploaded file", pad.width / 2, pad.height / 2);
  }
}

$("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  let bitmap = null;
  try { bitmap = await createImageBitmap(file); } catch { bitmap = null; }
  newEpoch();
  strokes = [];
  upload = { file, bitmap, fit: fitInto(bitmap) };
  redraw();
  changed(0);
});

// --- asking the server -----------------------------------------------------------------------

function changed(delay, throttle = false) {
  generation += 1;
  result.dataset.state = "pending";
  hideSaliency(saliencyWanted() ? "pending" : "off");   // the heat map was for the drawing before
  $("undo").disabled = !strokes.length && !upload;
  $("clear").disabled = !strokes.length && !upload;
  if (throttle && timer !== null) return;   // while drawing, keep the request already planned
  clearTimeout(timer);
  timer = setTimeout(ask, delay);
}

function padBlob() {
  return new Promise((resolve) => pad.toBlob(resolve, "image/png"));
}

function newEpoch() {
  epoch.abort();
  epoch = new AbortController();
  shown = sent;   // anything sent before now is void
}

async function padRequest() {
  if (upload) {   // the original file, as a form upload: the server reads it at full resolution
    const form = new FormData();
    form.append("file", upload.file, upload.file.name || "upload");
    return { method: "POST", body: form };
  }
  return { method: "POST", body: await padBlob(), headers: { "Content-Type": "image/png" } };
}

async function ask() {
  timer = null;
  const asked = generation, current = epoch;
  if (!strokes.length && !upload) { showEmptyPad(); return; }
  const request = await padRequest();
  if (current !== epoch) return;
  const number = ++sent;
  request.signal = current.signal;
  const url = (mode === "number" ? "/api/read" : "/api/predict") + "?image=1";
  let response, answer;
  try {
    response = await fetch(url, request);
    answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  } catch (error) {
    if (current !== epoch || number < shown) return;
    shown = number;
    showError(`The server did not answer (${error.message}).`);
    return;
  }
  if (current !== epoch || number < shown) return;   // voided, or overtaken by a newer answer
  shown = number;
  if (!response.ok) { showError(answer.error || `the server answered ${response.status}`); return; }
  if (mode === "number") showReading(answer); else showPrediction(answer);
  result.dataset.state = asked === generation ? "done" : "pending";
  if (asked === generation && saliencyWanted()) {
    if (answer.reason === "empty") hideSaliency("none"); else askSaliency(request, current, asked);
  }
}

// --- what mattered ---------------------------------------------------------------------------

function saliencyWanted() {
  return saliencyToggle.checked && mode === "digit";
}

function hideSaliency(state) {
  overlay.hidden = true;
  overlay.removeAttribute("src");
  seenFigure.dataset.saliency = state;
}

async function askSaliency(request, current, asked) {
  seenFigure.dataset.saliency = "pending";
  const stale = () => current !== epoch || asked !== generation || !saliencyWanted();
  let answer;
  try {
    const response = await fetch("/api/saliency", request);
    answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    if (!response.ok) throw new Error(answer.error || `the server answered ${response.status}`);
  } catch (error) {
    if (!stale()) hideSaliency("error");
    return;
  }
  if (stale()) return;
  if (!answer.saliency) { hideSaliency("none"); return; }
  overlay.src = `data:image/png;base64,${answer.saliency}`;
  await overlay.decode().catch(() => {});
  if (stale()) return;
  overlay.hidden = false;
  seenFigure.dataset.saliency = "shown";
}

async function toggleSaliency() {
  if (!saliencyWanted()) { hideSaliency("off"); return; }
  if (!strokes.length && !upload) { hideSaliency("none"); return; }
  if (result.dataset.state !== "done") { hideSaliency("pending"); return; }   // ask() will ask for it
  const asked = generation, current = epoch;
  const request = await padRequest();
  if (current !== epoch || asked !== generation) return;
  request.signal = current.signal;
  askSaliency(request, current, asked);
}

// --- showing answers -------------------------------------------------------------------------

function buildBars() {
  const bars = $("bars");
  for (let digit = 0; digit < 10; digit++) {
    const row = document.createElement("li");
    row.innerHTML = `<span class="label">${digit}</span><span class="track"><span class="fill"></span></span>` +
      `<span class="value">0%</span>`;
    bars.append(row);
  }
}

function setBars(probabilities, best) {
  [...$("bars").children].forEach((row, digit) => {
    const p = probabilities ? probabilities[digit] : 0;
    row.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
    row.querySelector(".value").textContent = `${Math.round(p * 100)}%`;
    row.classList.toggle("best", digit === best);
    row.setAttribute("aria-label", `${digit}: ${Math.round(p * 100)} percent`);
  });
}

function setSeen(base64) {
  const image = $("seen");
  if (base64) image.src = `data:image/png;base64,${base64}`;
  else image.removeAttribute("src");
}

function setAnswer(text, confidence, message, reason) {
  $("answer").textContent = text;
  $("confidence").textContent = confidence;
  $("message").textContent = message;
  if (reason) result.dataset.reason = reason; else delete result.dataset.reason;
}

function showEmptyPad() {
  boxCtx.clearRect(0, 0, boxes.width, boxes.height);
  hideSaliency(saliencyWanted() ? "none" : "off");
  setAnswer("–", "", MESSAGES.emptyPad[mode]);
  setBars(null, -1);
  setSeen(null);
  $("digits").replaceChildren();
  result.dataset.state = "empty";
}

function showError(message) {
  if (saliencyWanted()) hideSaliency("none");
  setAnswer("!", "", message);
  result.dataset.state = "error";
}

function showPrediction(answer) {
  const best = answer.probabilities.indexOf(Math.max(...answer.probabilities));
  setBars(answer.probabilities, answer.digit === null ? -1 : best);
  setSeen(answer.reason === "empty" ? null : answer.image);
  if (answer.digit === null) {
    setAnswer(answer.reason === "empty" ? "–" : "?", "", MESSAGES[answer.reason] || answer.reason, answer.reason);
  } else {
    setAnswer(String(answer.digit), `${(answer.confidence * 100).toFixed(1)}% sure`, "", null);
  }
}

function showReading(answer) {
  drawBoxes(answer.digits);
  const list = answer.digits.map((digit) => {
    const item = document.createElement("li");
    const known = digit.digit !== null;
    item.innerHTML = `<span class="digit${known ? "" : " unsure"}">${known ? digit.digit : "?"}</span>` +
      `<img alt="what the network saw"><small>${Math.round(digit.confidence * 100)}%</small>`;
    item.querySelector("img").src = `data:image/png;base64,${digit.image}`;
    return item;
  });
  $("digits").replaceChildren(...list);
  if (answer.number !== null) {
    setAnswer(answer.number, `${answer.digits.length} digit${answer.digits.length === 1 ? "" : "s"}`, "", null);
  } else if (answer.reason === "empty" || !answer.digits.length) {
    setAnswer("–", "", MESSAGES.empty, "empty");
  } else {
    const partial = answer.digits.map((digit) => (digit.digit === null ? "?" : digit.digit)).join("");
    setAnswer(partial, "", MESSAGES.numberNotDigit, answer.reason);
  }
}

function drawBoxes(digits) {
  boxCtx.clearRect(0, 0, boxes.width, boxes.height);
  const fit = upload ? upload.fit : { scale: 1, x: 0, y: 0 };
  if (!fit) return;   // an upload the browser cannot show: nothing to draw the boxes on
  boxCtx.lineWidth = 3;
  boxCtx.font = "bold 20px system-ui, sans-serif";
  boxCtx.textBaseline = "bottom";
  for (const digit of digits) {
    if (!digit.box) continue;
    const [x0, y0, x1, y1] = digit.box.map((value, index) => value * fit.scale + (index % 2 ? fit.y : fit.x));
    const colour = digit.digit === null ? "#b3261e" : "#1f6feb";
    boxCtx.strokeStyle = boxCtx.fillStyle = colour;
    boxCtx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    const label = digit.digit === null ? "?" : String(digit.digit);
    boxCtx.fillText(label, x0 + 2, Math.max(22, y0 - 2));
  }
}

// --- wiring ----------------------------------------------------------------------------------

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clearAll);
$("mode-digit").addEventListener("click", () => setMode("digit"));
$("mode-number").addEventListener("click", () => setMode("number"));
saliencyToggle.addEventListener("change", toggleSaliency);
document.addEventListener("keydown", (event) => {
  if ($("draw-view").hidden) return;   // the contest has its own keys
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") { event.preventDefault(); undo(); }
  else if (event.key === "Escape") clearAll();
});

buildBars();
resetPad();
showEmptyPad();
