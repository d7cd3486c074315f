// numbre's drawing page: a pad driven by pointer events, answers from /api/predict and /api/read.
//
// The pad is a fixed-size canvas (280x280 for a digit, 560x280 for a number) scaled by CSS, so the
// server always gets a canvas-sized PNG whatever the screen. Strokes are kept as point lists, which
// makes undo a redraw. The page asks while the pen moves (at most every THROTTLE_MS) and at once
// when it lifts. While drawing, each answer newer than the one shown is shown, even if the drawing
// has grown since; clearing, undoing, uploading or switching mode voids every answer still on its
// way. #result's data-state says where things stand: empty, pending (the drawing as it is now is
// not answered yet), done or error.
//
// The PNG is encoded with toDataURL, synchronously: canvas.toBlob's callback waits for the browser
// to be idle, which in a desktop Chromium took about a second once the pen had lifted.
//
// One pointer draws at a time (`drawing` holds its pointerId): a second finger is ignored rather than
// joined to the first by a line, and a touch as wide as a palm draws nothing.
//
// Screen readers hear #announce (a polite live region), written once per final answer: once the pen
// has lifted and the answer is for the drawing as it is, never for the answers shown while drawing.
//
// Tools: a brush size (the range #brush, in pad pixels) and an eraser, which is a stroke of white
// paper, so the PNG sent stays exactly what is on the pad. Each stroke keeps its own width and kind,
// so Undo and Redo (Ctrl+Z; Ctrl+Y or Ctrl+Shift+Z) are a redraw; a new stroke forgets what Redo
// could have put back. "Download PNG" saves the pad as it is.
//
// "That was wrong?" (#correction) is offered only by a server that keeps corrections (GET
// /api/corrections says enabled; `numbre serve --corrections DIR`), for one digit once it is answered.
// It opens ten digit buttons (keys 0-9 too; Esc closes them); the one chosen posts the same drawing
// to /api/corrections?label=N, and the server reads it itself and names the files.
//
// "Show what mattered" lays /api/saliency's heat map over the 28x28 view, for one digit only. It
// costs tens of milliseconds, so it is asked once the answer to the finished drawing is shown, not
// while the pen moves. #seen-figure's data-saliency: off, pending, shown, none (nothing to explain)
// or error.
"use strict";

const PEN = 18;            // stroke width in pad pixels: MNIST's stroke is about 1/14 of its box
const THROTTLE_MS = 200;   // while drawing: at most one request this often
const PALM_PX = 100;       // a touch contact wider than this (CSS pixels) is a palm, not a fingertip
const SIZES = { digit: [280, 280], number: [560, 280] };
const MESSAGES = {
  emptyPad: { digit: "Draw a digit in the box.", number: "Write a number in the box, digits side by side." },
  empty: "The image is empty: there is no ink to read.",
  "not a digit": "That does not look like a digit.",
  "several digits": "That looks like several digits: switch to \u201cA number\u201d.",
  numberNotDigit: "Some of that is not a digit (marked ?).",
  // offline.js reads a number with the line model alone; the server would also cut an unsure line into digits
  readWithoutCutting: "Read in this browser without cutting the line into digits: a digit may be misread.",
};
const FORMATS = "PNG, JPEG, GIF, BMP, TIFF or WebP";

const $ = (id) => document.getElementById(id);
const pad = $("pad"), boxes = $("boxes"), frame = $("pad-frame"), result = $("result");
const ctx = pad.getContext("2d");
const seenFigure = $("seen-figure"), overlay = $("saliency"), saliencyToggle = $("show-saliency");
const boxCtx = boxes.getContext("2d");
// offline.js's in-browser reader: it answers when the server does not (a static copy of the page, or a
// server that went away); null if that script is missing.
const offline = window.NumbreOffline ? window.NumbreOffline.page : null;

let mode = "digit";
let strokes = [];          // [[{x, y}, ...], ...] in pad pixels; each array also has .width and .erase
let undone = [];           // strokes taken back by Undo, the latest last: what Redo puts back
let erasing = false;       // the eraser is on: new strokes are white paper
let corrections = false;   // the server keeps corrections (GET /api/corrections)
let current = null;        // the stroke being drawn
let drawing = null;        // the pointerId drawing it
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

function styleInk(style) {
  const colour = style.erase ? "#fff" : "#000";   // the eraser puts paper back
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.lineWidth = style.width || PEN;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

function drawStroke(points, style = points) {
  styleInk(style);
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(points[0].x, points[0].y, (style.width || PEN) / 2, 0, 2 * Math.PI);
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

function isPalm(event) {
  return event.pointerType === "touch" && Math.max(event.width || 0, event.height || 0) > PALM_PX;
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  if (drawing !== null || isPalm(event)) return;   // a second finger, or a resting hand
  if (event.pointerType === "mouse" && event.button !== 0) return;
  if (upload) { newEpoch(); upload = null; redraw(); }
  pad.setPointerCapture(event.pointerId);
  drawing = event.pointerId;
  current = Object.assign([padPoint(event)], { width: Number($("brush").value) || PEN, erase: erasing });
  strokes.push(current);
  undone = [];
  drawStroke(current);
  changed(THROTTLE_MS, true);
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== drawing) return;
  event.preventDefault();
  if (isPalm(event)) { dropStroke(); return; }   // a finger that flattened into a palm: not ink
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  const start = current.length - 1;
  for (const each of events.length ? events : [event]) current.push(padPoint(each));
  drawStroke(current.slice(start), current);   // only the new segment: redrawing the whole stroke darkens joins
  changed(THROTTLE_MS, true);
});

function endStroke(event) {
  if (event.pointerId !== drawing) return;
  current = null;
  drawing = null;
  if (pad.hasPointerCapture(event.pointerId)) pad.releasePointerCapture(event.pointerId);
  changed(0);
}

function dropStroke() {
  newEpoch();
  strokes.pop();
  current = null;
  drawing = null;
  redraw();
  changed(0);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("contextmenu", (event) => event.preventDefault());

function undo() {
  if (upload) { clearAll(); return; }
  if (!strokes.length) return;
  newEpoch();
  undone.push(strokes.pop());
  redraw();
  changed(0);
}

function redo() {
  if (!undone.length || drawing !== null) return;
  newEpoch();
  strokes.push(undone.pop());
  redraw();
  changed(0);
}

function clearAll() {
  newEpoch();
  strokes = [];
  undone = [];
  current = null;
  drawing = null;
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
  undone = [];
  current = null;
  drawing = null;
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
  event.target.value = "";   // so that picking the same file again (after drawing, say) reads it again
  let bitmap = null;
  try { bitmap = await createImageBitmap(file); } catch { bitmap = null; }
  newEpoch();
  strokes = [];
  undone = [];
  upload = { file, bitmap, fit: fitInto(bitmap) };
  redraw();
  changed(0);
});

// --- asking the server -----------------------------------------------------------------------

function changed(delay, throttle = false) {
  generation += 1;
  result.dataset.state = "pending";
  hideSaliency(saliencyWanted() ? "pending" : "off");   // the heat map was for the drawing before
  enableTools(strokes.length > 0 || upload !== null);
  if (throttle && timer !== null) return;   // while drawing, keep the request already planned
  clearTimeout(timer);
  timer = setTimeout(ask, delay);
}

// Undo and Clear are disabled on an empty pad; the focus they held moves to the next control along
// that is enabled (Redo after an Undo, else the upload control), rather than falling to the page's body.
function enableTools(enabled) {
  const focused = document.activeElement;
  $("undo").disabled = $("clear").disabled = $("download").disabled = !enabled;
  $("redo").disabled = !undone.length;
  if ($("redo").disabled && focused === $("redo")) (enabled ? $("undo") : $("upload")).focus();
  else if (!enabled && focused === $("undo") && !$("redo").disabled) $("redo").focus();   // the next one along
  else if (!enabled && (focused === $("undo") || focused === $("clear"))) $("upload").focus();
  else if (!enabled && focused === $("download")) $("brush").focus();
}

function padBlob() {   // synchronous: see the top of this file
  const [, base64] = pad.toDataURL("image/png").split(",", 2);
  const bytes = Uint8Array.from(atob(base64), (character) => character.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });
}

function newEpoch() {
  epoch.abort();
  epoch = new AbortController();
  shown = sent;   // anything sent before now is void
}

function padRequest() {
  if (upload) {   // the original file, as a form upload: the server reads it at full resolution
    const form = new FormData();
    form.append("file", upload.file, upload.file.name || "upload");
    return { method: "POST", body: form };
  }
  return { method: "POST", body: padBlob(), headers: { "Content-Type": "image/png" } };
}

async function ask() {
  timer = null;
  const asked = generation, current = epoch;
  if (!strokes.length && !upload) { showEmptyPad(); return; }
  const here = offline !== null && !offline.shouldAskServer();   // this browser answers: no PNG to make
  const request = here ? {} : padRequest();
  const number = ++sent;
  request.signal = current.signal;
  const url = (mode === "number" ? "/api/read" : "/api/predict") + "?image=1";
  let response, answer;
  try {
    if (here) throw new Error("answered in this browser");
    response = await fetch(url, request);
    answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
    // A server that is not numbre's (a static copy of the page) answers POSTs with an HTML refusal.
    if (offline && !/json/.test(response.headers.get("Content-Type") || "")) throw new Error("no numbre server");
  } catch (error) {
    if (current !== epoch || number < shown) return;
    if (!offline || !(await offline.takeOver())) {
      shown = number;
      showError("The server does not answer. Check that it is still running, then try again.");
      return;
    }
    answer = await offline.predict(pad, mode);
    response = { ok: !answer.error, status: 0 };
  }
  if (current !== epoch || number < shown) return;   // voided, or overtaken by a newer answer
  shown = number;
  if (!response.ok) { showError(response.status ? pageMessage(response.status, answer.error) : answer.error); return; }
  const spoken = mode === "number" ? showReading(answer) : showPrediction(answer);
  result.dataset.state = asked === generation ? "done" : "pending";
  if (asked === generation && drawing === null) announce(spoken);
  if (asked === generation && saliencyWanted()) {
    if (answer.reason === "empty") hideSaliency("none"); else askSaliency(request, current, asked);
  }
}

// --- what mattered ---------------------------------------------------------------------------

function saliencyWanted() {   // the heat map comes from the server: not while this browser answers
  return saliencyToggle.checked && mode === "digit" && !(offline && offline.active);
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
  const request = padRequest();
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

// With nothing to show, the <img> is hidden (an <img> without src draws a broken-image icon) and
// #seen-empty, a plain empty box, stands in its place.
function setSeen(base64) {
  const image = $("seen");
  if (base64) image.src = `data:image/png;base64,${base64}`;
  else image.removeAttribute("src");
  image.hidden = !base64;
  $("seen-empty").hidden = Boolean(base64);
}

function announce(text) {
  $("announce").textContent = text;
}

// "a 7" but "an 8": eight is the only digit whose name starts with a vowel sound.
function withArticle(digit) {
  return `${String(digit) === "8" ? "an" : "a"} ${digit}`;
}

// The server's refusals are written for API clients ("send an image as the multipart field 'file'");
// this says the same to someone on the page.
function pageMessage(status, said) {
  const text = String(said || "");
  if (status === 413) return "That file is too large for this server. Crop or shrink the picture to the digits first.";
  if (status === 429 || status === 503) return "The server is busy. Wait a moment, then try again.";
  if (status === 408 || status === 504) return "The server took too long to answer. Try again.";
  if (status === 415 || /not an image/.test(text)) {   // "the upload is a PDF document, not an image; ..."
    const kind = text.match(/^the upload is (an? [^,(;]+|text)/) || text.match(/not an image: it (?:is|looks like) (a[^;,]+|text)/);
    return `That file is ${kind ? `${kind[1].trim()}, not` : "not"} an image this page can read (${FORMATS}).`;
  }
  if (/megapixels|pixels, over|more pixels/.test(text)) return "That image has too many pixels for this server. Shrink it first.";
  if (/truncated|corrupt|unreadable|no pixels|empty/.test(text)) {
    return "That image is damaged or incomplete. Save it again as PNG or JPEG and upload that.";
  }
  if (status >= 500) return `Something went wrong on the server (error ${status}). Try again.`;
  return `The server could not read that (error ${status}). Try another image.`;
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
  announce("");   // nothing said; the last answer is no longer there to be read
  $("digits").replaceChildren();
  result.dataset.state = "empty";
}

function showError(message) {   // nothing of the previous answer stays beside the "!"
  if (saliencyWanted()) hideSaliency("none");
  boxCtx.clearRect(0, 0, boxes.width, boxes.height);
  setAnswer("!", "", message);
  setBars(null, -1);
  setSeen(null);
  $("digits").replaceChildren();
  result.dataset.state = "error";
  announce(message);
}

function showPrediction(answer) {
  const best = answer.probabilities.indexOf(Math.max(...answer.probabilities));
  setBars(answer.probabilities, answer.digit === null ? -1 : best);
  setSeen(answer.reason === "empty" ? null : answer.image);
  if (answer.digit === null) {
    const message = MESSAGES[answer.reason] || answer.reason;
    setAnswer(answer.reason === "empty" ? "–" : "?", "", message, answer.reason);
    return message;
  }
  const sure = `${(answer.confidence * 100).toFixed(1)}% sure`;
  setAnswer(String(answer.digit), sure, "", null);
  return `It is ${withArticle(answer.digit)}, ${sure}.`;
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
    const note = answer.unsure ? MESSAGES.readWithoutCutting : "";   // only answers read in this browser say so
    setAnswer(answer.number, `${answer.digits.length} digit${answer.digits.length === 1 ? "" : "s"}`, note, null);
    return `It reads ${answer.number}.${note ? ` ${note}` : ""}`;
  }
  if (answer.reason === "empty") {
    setAnswer("–", "", MESSAGES.empty, "empty");
    return MESSAGES.empty;
  }
  if (!answer.digits.length) {   // ink in which this browser's line model finds no symbol at all
    setAnswer("?", "", MESSAGES[answer.reason] || MESSAGES.empty, answer.reason);
    return MESSAGES[answer.reason] || MESSAGES.empty;
  }
  const partial = answer.digits.map((digit) => (digit.digit === null ? "?" : digit.digit)).join("");
  setAnswer(partial, "", MESSAGES.numberNotDigit, answer.reason);
  return `It reads ${partial}. ${MESSAGES.numberNotDigit}`;
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

// --- tools: eraser, brush, download ------------------------------------------------------------

function setEraser(on) {
  erasing = on;
  $("eraser").setAttribute("aria-pressed", String(on));
  frame.dataset.tool = on ? "eraser" : "pen";
}

function showBrush() {
  $("brush-size").textContent = `${$("brush").value} px`;
}

function download() {   // the pad as it is, as the PNG the server is sent
  if (!strokes.length && !upload) return;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(padBlob());
  const stamp = new Date().toISOString().replace(/\..*$/, "").replace(/[-:]/g, "").replace("T", "-");
  link.download = `numbre-drawing-${stamp}.png`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// --- "That was wrong, it is a ..." -------------------------------------------------------------

async function checkCorrections() {
  try {
    const response = await fetch("/api/corrections");
    const answer = await response.json();
    corrections = response.ok && answer.enabled === true;
  } catch {
    corrections = false;   // no server (a static copy of the page): nowhere to keep them
  }
  updateCorrection();
}

function correctionWanted() {
  return corrections && mode === "digit" && result.dataset.state === "done" && drawing === null &&
    result.dataset.reason !== "empty" && !(typeof offline !== "undefined" && offline && offline.active);
}

// Follows #result's state: offered once an answer is shown, gone (with what it said) while the drawing changes.
// Not while the pen is down: an answer to a stroke still being drawn (the throttled asks) is not the question.
function updateCorrection() {
  const wanted = correctionWanted();
  if (!wanted && !$("correction").hidden) {
    openDigits(false, false);
    $("correction-status").textContent = "";
    delete result.dataset.corrected;
    if ($("correction").contains(document.activeElement)) ($("undo").disabled ? $("upload") : $("undo")).focus();
  }
  $("correction").hidden = !wanted;
}

function digitsOpen() {
  return !$("right-digits").hidden;
}

function openDigits(open, focus = true) {
  $("right-digits").hidden = !open;
  $("wrong").setAttribute("aria-expanded", String(open));
  if (focus) (open ? $("right-digits").querySelector("button") : $("wrong")).focus();
}

function correctionMessage(status, said) {
  if (status === 403) return "This server does not keep corrections.";
  if (status === 507) return "The server has no room for more corrections. Thank you all the same.";
  return pageMessage(status, said);
}

async function sendCorrection(digit) {
  if (!correctionWanted()) return;
  const asked = generation;
  const request = padRequest();   // the drawing as it is now (or the uploaded file): the server reads it itself
  const say = (text) => { $("correction-status").textContent = text; announce(text); };
  openDigits(false);
  $("wrong").disabled = true;
  $("correction-status").textContent = "Sending\u2026";
  let response, answer;
  try {
    response = await fetch(`/api/corrections?label=${digit}`, request);
    answer = await response.json().catch(() => ({ error: `the server answered ${response.status}` }));
  } catch {
    response = null;
  }
  $("wrong").disabled = false;
  if (asked !== generation) return;   // the drawing changed meanwhile: what it said no longer applies
  if (response === null) say("The server does not answer: the correction was not kept.");
  else if (!response.ok) say(`Not kept: ${correctionMessage(response.status, answer.error)}`);
  else say(`Thank you: kept as ${withArticle(digit)} to train the model on.`);
  if (response && response.ok) result.dataset.corrected = String(digit);
}

// --- wiring ----------------------------------------------------------------------------------

$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("eraser").addEventListener("click", () => setEraser(!erasing));
$("brush").addEventListener("input", showBrush);
$("download").addEventListener("click", download);
$("wrong").addEventListener("click", () => openDigits(!digitsOpen()));
for (const button of $("right-digits").querySelectorAll("button[data-digit]")) {
  button.addEventListener("click", () => sendCorrection(Number(button.dataset.digit)));
}
new MutationObserver(updateCorrection).observe(result, { attributes: true,
  attributeFilter: ["data-state", "data-mode", "data-reason"] });
$("clear").addEventListener("click", clearAll);
$("mode-digit").addEventListener("click", () => setMode("digit"));
$("mode-number").addEventListener("click", () => setMode("number"));
saliencyToggle.addEventListener("change", toggleSaliency);
document.addEventListener("keydown", (event) => {
  if ($("draw-view").hidden) return;   // the contest has its own keys
  const control = event.ctrlKey || event.metaKey, key = event.key.toLowerCase();
  if (control && (key === "y" || (key === "z" && event.shiftKey))) { event.preventDefault(); redo(); }
  else if (control && key === "z") { event.preventDefault(); undo(); }
  else if (digitsOpen() && /^[0-9]$/.test(event.key) && !control && !event.altKey) {
    event.preventDefault();
    sendCorrection(Number(event.key));
  } else if (event.key === "Escape" && digitsOpen()) openDigits(false);
  else if (event.key === "Escape") clearAll();
});

buildBars();
resetPad();
showEmptyPad();
showBrush();
setEraser(false);
checkCorrections();
