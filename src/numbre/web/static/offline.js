// numbre's reading in the browser: the server's preprocessing (numbre.reading.preprocess), its "several
// digits" count (numbre.reading.segment.count_digits) and its rejection policy (numbre.model.rejection),
// ported step for step, with the shipped ONNX model run by onnxruntime-web's WebAssembly backend.
//
// Why a port and not an approximation: the page promises the same answer whoever reads the drawing, so
// every stage keeps the server's arithmetic: float32 where numpy works in float32 (Math.fround after
// each operation), Pillow's resampling (BOX when shrinking, BILINEAR when enlarging, two passes,
// horizontal first, double accumulators), Python's round-half-to-even, thresholds compared as float32.
// Sums that numpy adds pairwise are added here in order, which can differ in the last float32 bit; a
// decision that hangs on that bit is the only way the two can part (tests/web/test_offline_page.py
// compares 60 drawings).
//
// What is read: the pad's own pixels (canvas RGBA, opaque: the page paints it white first), one digit,
// or a whole number with the line model (numbre.reading.line_reader: line_input, greedy CTC decoding,
// token_boxes) when it is there (GET /api/line-model.onnx, or line-model.onnx beside a static site). The
// server also cuts a line into digits (numbre.reading.read_line) when the line model is unsure of one
// (recognize.LINE_SURE) and keeps the surer reading; that cutting reader is not ported, so here the line
// model's reading stands, and the page says numbers are read without cutting. An upload is read as the
// pad shows it (fitted to the pad), not at its full resolution.
//
// Loaded as a classic script (window.NumbreOffline) and as a CommonJS module (node), so the port can be
// checked against the Python pipeline outside a browser too.
"use strict";

(function (root) {
  const SIDE = 28, DIGIT = 20, INK = 0.5, TOLERANCE = 1e-3;
  const OVERVIEW_SIDE = 160, DETAIL_SIDE = 40;
  const STROKE_SCALE = 3, STROKE_TARGET = 6.0, STROKE_BAND = [0.66, 1.55], GROW_STEPS = 5;
  const MNIST_CENTRE = [14.0, 14.0];
  const LABEL_SIDE = 80, SPECK_FRACTION = 0.05, MIN_EXTENT = 0.015, MIN_STROKES = 2.5;
  const FAINT = 0.25;   // preprocess.FAINT: ink joined to a stroke by hysteresis
  const BACKGROUND_OPENING = 11;   // preprocess.BACKGROUND_OPENING: a picture of about a digit's shape
  const LINE_BACKGROUND_OPENING = 9;   // preprocess.LINE_BACKGROUND_OPENING: a wider or taller one
  const EDGE_SLIVER = 8;   // preprocess.EDGE_SLIVER
  const GRAIN_AVERAGED = 3;   // preprocess.GRAIN_AVERAGED
  const FLAT_FRAME = 0.08;   // preprocess.FLAT_FRAME
  const MIXED_FRAME = 0.25;   // preprocess.MIXED_FRAME
  const SURE_ALONE = 0.9;   // numbre.reading.recognize.SURE_ALONE
  // numbre.reading.segment
  const SEG_SPECK_FRACTION = 0.02, SPLIT_ASPECT = 1.15, JOINED_ASPECT = 0.75, SINGLE_CROSSING = 1.3;
  const TALL_SIDES = 0.9, MIN_PART = 0.2, SEAM_ROWS = 48, MAX_PIECES = 60, TYPICAL_ASPECT = 0.7;
  const NOT_A_DIGIT = "not a digit", DIGITS = 10;
  // numbre.model.line_model: HEIGHT, CONTENT, STRIDE, PAD_X, MAX_WIDTH, BLANK, JUNK_CLASS, CLASSES
  const LINE_HEIGHT = 32, LINE_CONTENT = 28, LINE_STRIDE = 4, LINE_PAD_X = 8, LINE_MAX_WIDTH = 4096;
  const BLANK = 0, JUNK_CLASS = 11, LINE_CLASSES = 12;
  const LINE_SURE = 0.98;   // numbre.reading.recognize.LINE_SURE

  const f32 = Math.fround;

  // An image: {w, h, d} with d a Float32Array (or Uint8Array for masks) in row order.
  const image = (w, h, d) => ({ w, h, d: d || new Float32Array(w * h) });

  function roundHalfEven(x) {   // Python's round()
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  // --- decoding: numbre.reading.images.grey_pixels for opaque 8-bit RGBA --------------------------

  function luma(rgba, w, h) {   // Pillow's RGB -> L (L24): the same integers Pillow gives
    const out = new Uint8Array(w * h);
    for (let i = 0, p = 0; i < out.length; i++, p += 4) {
      out[i] = (rgba[p] * 19595 + rgba[p + 1] * 38470 + rgba[p + 2] * 7471 + 0x8000) >> 16;
    }
    return out;
  }

  function boxReduceBytes(values, w, h, factor) {   // box_reduce of uint8, then * 1/255 (float32)
    const ow = Math.ceil(w / factor), oh = Math.ceil(h / factor), out = image(ow, oh);
    const scale = f32(1 / (factor * factor)), unit = f32(1 / 255);
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        let total = 0;
        for (let r = 0; r < factor; r++) {
          const row = Math.min(h - 1, y * factor + r);   // edge blocks repeat the last row and column
          for (let c = 0; c < factor; c++) total += values[row * w + Math.min(w - 1, x * factor + c)];
        }
        out.d[y * ow + x] = factor > 1 ? f32(f32(total * scale) * unit) : f32(total * unit);
      }
    }
    return out;
  }

  function boxReduceFloat(src, factor) {   // box_reduce of float32: block sums in numpy's order
    if (factor <= 1) return image(src.w, src.h, Float32Array.from(src.d));
    const { w, h, d } = src, ow = Math.ceil(w / factor), oh = Math.ceil(h / factor), out = image(ow, oh);
    const scale = f32(1 / (factor * factor));
    const at = (row, column) => d[Math.min(h - 1, row) * w + Math.min(w - 1, column)];
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) {
        let total = at(y * factor, x * factor);
        for (let r = 0; r < factor; r++) {
          for (let c = 0; c < factor; c++) if (r || c) total = f32(total + at(y * factor + r, x * factor + c));
        }
        out.d[y * ow + x] = f32(total * scale);
      }
    }
    return out;
  }

  // The canvas's pixels as a picture: RGBA bytes with a crop (x0, y0, x1, y1).
  function greyPixels(picture, reduce) {
    const { rgba, width, box } = picture;
    const [x0, y0, x1, y1] = box, w = x1 - x0, h = y1 - y0;
    const cropped = new Uint8ClampedArray(w * h * 4);
    for (let y = 0; y < h; y++) cropped.set(rgba.subarray(((y0 + y) * width + x0) * 4, ((y0 + y) * width + x1) * 4), y * w * 4);
    return boxReduceBytes(luma(cropped, w, h), w, h, reduce);
  }

  // --- Pillow's resize of float ('F') images ------------------------------------------------------

  const FILTERS = {
    box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) },
    bilinear: { support: 1.0, f: (x) => { x = Math.abs(x); return x < 1.0 ? 1.0 - x : 0.0; } },
  };

  function coefficients(inSize, outSize, filter) {   // Pillow's precompute_coeffs
    const scale = inSize / outSize, filterscale = Math.max(1.0, scale);
    const support = filter.support * filterscale, ss = 1.0 / filterscale;
    const result = [];
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      const xmin = Math.max(0, Math.trunc(center - support + 0.5));
      const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
      const k = [];
      let ww = 0.0;
      for (let x = 0; x < xmax; x++) { const w = filter.f((x + xmin - center + 0.5) * ss); k.push(w); ww += w; }
      if (ww !== 0.0) for (let x = 0; x < xmax; x++) k[x] /= ww;
      result.push({ xmin, k });
    }
    return result;
  }

  // Pillow's Image.resize of an 'F' image to ow x oh with `filter` ("box" or "bilinear").
  function pilResize(src, ow, oh, filterName) {
    const filter = FILTERS[filterName];
    if (ow === src.w && oh === src.h) return image(ow, oh, Float32Array.from(src.d));
    let current = src;
    const vertical = coefficients(src.h, oh, filter);
    if (ow !== src.w) {   // horizontal first, over the rows the vertical pass uses
      const first = vertical[0].xmin, last = vertical[oh - 1].xmin + vertical[oh - 1].k.length;
      const horizontal = coefficients(src.w, ow, filter), rows = last - first, temp = image(ow, rows);
      for (let y = 0; y < rows; y++) {
        for (let x = 0; x < ow; x++) {
          const { xmin, k } = horizontal[x];
          let ss = 0.0;
          for (let i = 0; i < k.length; i++) ss += src.d[(y + first) * src.w + xmin + i] * k[i];
          temp.d[y * ow + x] = ss;
        }
      }
      for (const each of vertical) each.xmin -= first;
      current = temp;
    }
    if (oh === src.h) return current;
    const out = image(ow, oh);
    for (let y = 0; y < oh; y++) {
      const { xmin, k } = vertical[y];
      for (let x = 0; x < ow; x++) {
        let ss = 0.0;
        for (let i = 0; i < k.length; i++) ss += current.d[(i + xmin) * ow + x] * k[i];
        out.d[y * ow + x] = ss;
      }
    }
    return out;
  }

  // --- helpers on images --------------------------------------------------------------------------

  function crop(src, [x0, y0, x1, y1]) {
    const out = image(x1 - x0, y1 - y0, new src.d.constructor((x1 - x0) * (y1 - y0)));
    for (let y = y0; y < y1; y++) out.d.set(src.d.subarray(y * src.w + x0, y * src.w + x1), (y - y0) * out.w);
    return out;
  }

  function borderValues(src) {   // preprocess._border
    const { w, h, d } = src, t = Math.max(1, Math.floor(Math.min(w, h) / 50)), values = [];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) if (y < t || y >= h - t || x < t || x >= w - t) values.push(d[y * w + x]);
    }
    return values;
  }

  function median(values) {   // np.median of float32 values: the middle, or the float32 mean of two
    const sorted = Float64Array.from(values).sort(), n = sorted.length;
    return n % 2 ? sorted[(n - 1) / 2] : f32(f32(sorted[n / 2 - 1] + sorted[n / 2]) / 2);
  }

  function inkBox(src, threshold = INK - TOLERANCE) {   // preprocess.ink_box
    const level = f32(threshold);
    let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
    for (let y = 0; y < src.h; y++) {
      for (let x = 0; x < src.w; x++) {
        if (src.d[y * src.w + x] >= level) {
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          y1 = y;
        }
      }
    }
    return x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1];
  }

  const longer = (box) => Math.max(box[2] - box[0], box[3] - box[1]);

  function framed(mask, w, h, width, value) {   // preprocess._framed: a mask inside a frame
    const fw = w + 2 * width, fh = h + 2 * width, out = new Uint8Array(fw * fh).fill(value ? 1 : 0);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(y + width) * fw + x + width] = mask[y * w + x];
    return { w: fw, h: fh, d: out };
  }

  function strokeWidth(src, isMask = false) {   // preprocess.stroke_width
    const level = f32(0.1), mask = new Uint8Array(src.w * src.h);
    let total = 0;
    for (let i = 0; i < mask.length; i++) { mask[i] = isMask ? src.d[i] : src.d[i] > level ? 1 : 0; total += src.d[i]; }
    const inked = framed(mask, src.w, src.h, 1, false);
    let edges = 0;
    for (let y = 0; y < inked.h; y++) {
      for (let x = 0; x < inked.w; x++) {
        const here = inked.d[y * inked.w + x];
        if (y + 1 < inked.h && here !== inked.d[(y + 1) * inked.w + x]) edges++;
        if (x + 1 < inked.w && here !== inked.d[y * inked.w + x + 1]) edges++;
      }
    }
    return edges ? (2.0 * f32(total)) / edges : 0.0;
  }

  function morphStep(mask, w, h, square, grow) {   // preprocess.morph_step
    const padded = framed(mask, w, h, 1, !grow), out = new Uint8Array(w * h);
    const shifts = [[0, 1], [1, 0], [1, 2], [2, 1]];
    if (square) shifts.push([0, 0], [0, 2], [2, 0], [2, 2]);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let value = padded.d[(y + 1) * padded.w + x + 1];
        for (const [r, c] of shifts) {
          const other = padded.d[(y + r) * padded.w + x + c];
          value = grow ? value | other : value & other;
        }
        out[y * w + x] = value;
      }
    }
    return out;
  }

  // 8-connected components of a mask, numbered in raster order of their first pixel (as scipy's label).
  function components(mask, w, h) {
    const labels = new Int32Array(w * h), parent = [0];
    const find = (a) => { while (parent[a] !== a) { parent[a] = parent[parent[a]]; a = parent[a]; } return a; };
    let next = 1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!mask[y * w + x]) continue;
        let found = 0;
        for (const [dy, dx] of [[-1, -1], [-1, 0], [-1, 1], [0, -1]]) {
          const yy = y + dy, xx = x + dx;
          if (yy < 0 || xx < 0 || xx >= w) continue;
          const other = labels[yy * w + xx];
          if (!other) continue;
          if (!found) found = find(other);
          else {
            const a = find(found), b = find(other);
            if (a !== b) { parent[Math.max(a, b)] = Math.min(a, b); found = Math.min(a, b); }
          }
        }
        if (!found) { found = next++; parent.push(found); }
        labels[y * w + x] = found;
      }
    }
    const number = new Int32Array(next);   // roots renumbered 1.. in order of first pixel
    let count = 0;
    for (let i = 0; i < labels.length; i++) {
      if (!labels[i]) continue;
      const root = find(labels[i]);
      if (!number[root]) number[root] = ++count;
      labels[i] = number[root];
    }
    return { count, labels };
  }

  // --- stage 1: ink (preprocess._to_ink, _drop_specks) ---------------------------------------------

  function smooth(src) {   // preprocess._smooth: (1 2 1) / 4 down the columns, then along the rows, edges repeated
    const { w, h } = src, rows = image(w, h), out = image(w, h);
    for (let y = 0; y < h; y++) {
      const above = Math.max(0, y - 1) * w, here = y * w, below = Math.min(h - 1, y + 1) * w;
      for (let x = 0; x < w; x++) rows.d[here + x] = f32(f32(src.d[above + x] + src.d[below + x]) + 2 * src.d[here + x]) * 0.25;
    }
    for (let y = 0; y < h; y++) {
      const r = y * w;
      for (let x = 0; x < w; x++) {
        const left = rows.d[r + Math.max(0, x - 1)], right = rows.d[r + Math.min(w - 1, x + 1)];
        out.d[r + x] = f32(f32(left + right) + 2 * rows.d[r + x]) * 0.25;
      }
    }
    return out;
  }

  function sampled(values) {   // preprocess._sample: every so many pixels, as numpy slices them
    const all = Array.from(values);
    if (all.length <= 4000) return all;
    const step = Math.floor(all.length / 2000);
    return all.filter((_, index) => index % step === 0);
  }

  function toInk(grey, shrunkBy) {
    const { w, h } = grey, n = w * h;
    if (Math.min(w, h) < 3) return image(w, h);
    let border = borderValues(grey);
    let lowest = Infinity, highest = -Infinity, darkest = Infinity, brightest = -Infinity;
    for (const value of border) { lowest = Math.min(lowest, value); highest = Math.max(highest, value); }
    const spread = f32(highest - lowest);
    const flat = spread < FLAT_FRAME;
    if (!flat && shrunkBy < GRAIN_AVERAGED) {   // a photo or a grainy scan, its grain not yet averaged
      grey = smooth(grey);
      border = borderValues(grey);
    }
    for (let i = 0; i < n; i++) { darkest = Math.min(darkest, grey.d[i]); brightest = Math.max(brightest, grey.d[i]); }
    let background = lowest === highest ? lowest : median(border);
    // preprocess._to_ink: a frame's median between the extremes is paper mixed with a table or a turned
    // photo's corners; the whole picture's median is the paper's then.
    if (!flat && Math.min(background - darkest, brightest - background) > MIXED_FRAME * (brightest - darkest)) {
      background = median(sampled(grey.d));
    }
    const darkInk = background - darkest >= brightest - background;
    let ink, noise;
    if (flat) {
      ink = image(w, h);
      const level = f32(background);
      for (let i = 0; i < n; i++) ink.d[i] = darkInk ? level - grey.d[i] : grey.d[i] - level;
      noise = spread / 6;
    } else {
      const oriented = image(w, h);
      for (let i = 0; i < n; i++) oriented.d[i] = darkInk ? f32(1.0 - grey.d[i]) : grey.d[i];
      const under = backgroundOf(oriented);
      ink = image(w, h);
      for (let i = 0; i < n; i++) ink.d[i] = oriented.d[i] - under.d[i];
      noise = Math.min(robustSigma(sampled(ink.d)), robustSigma(borderValues(ink)));   // preprocess._paper_noise
    }
    const above = f32(Math.max(6 * noise, 0.04));
    let candidates = [];
    for (let i = 0; i < n; i++) if (ink.d[i] > above) candidates.push(ink.d[i]);
    if (!candidates.length) return image(w, h);
    if (candidates.length > 4000) {
      const step = Math.floor(candidates.length / 4000);
      candidates = candidates.filter((_, index) => index % step === 0);
    }
    const rank = Math.trunc(0.9 * (candidates.length - 1));
    const level = Float64Array.from(candidates).sort()[rank];
    if (level < Math.max(0.05, 5 * noise)) return image(w, h);
    const floor = Math.min(3 * noise, 0.3 * level), scale = f32(1.0 / (level - floor)), lower = f32(floor);
    for (let i = 0; i < n; i++) {
      let value = ink.d[i];
      if (floor !== 0) value = f32(value - lower);
      if (scale !== 1) value = f32(value * scale);
      ink.d[i] = Math.max(0, Math.min(1, value));
    }
    return dropSpecks(ink, noise > 0, !flat && Math.max(w, h) <= 2 * Math.min(w, h));
  }

  function robustSigma(values) {   // preprocess._robust_sigma
    const centre = median(values);
    return 1.4826 * median(values.map((value) => f32(Math.abs(f32(value - centre)))));
  }

  function backgroundOf(src) {   // preprocess._background: a grey opening on a ~32 px copy, scaled back
    const factor = Math.max(src.w, src.h) / 32;
    const sw = Math.max(1, roundHalfEven(src.w / factor)), sh = Math.max(1, roundHalfEven(src.h / factor));
    let small = pilResize(src, sw, sh, "box");
    const filter = (img, size, pick) => {   // scipy.ndimage min/max/uniform filters, mode "nearest", separable
      const half = Math.floor(size / 2), out = image(img.w, img.h), temp = image(img.w, img.h);
      for (let y = 0; y < img.h; y++) {
        for (let x = 0; x < img.w; x++) {
          const values = [];
          for (let i = -half; i < size - half; i++) values.push(img.d[y * img.w + Math.min(img.w - 1, Math.max(0, x + i))]);
          temp.d[y * img.w + x] = pick(values);
        }
      }
      for (let y = 0; y < img.h; y++) {
        for (let x = 0; x < img.w; x++) {
          const values = [];
          for (let i = -half; i < size - half; i++) values.push(temp.d[Math.min(img.h - 1, Math.max(0, y + i)) * img.w + x]);
          out.d[y * img.w + x] = pick(values);
        }
      }
      return out;
    };
    const size = Math.max(src.w, src.h) <= 2 * Math.min(src.w, src.h) ? BACKGROUND_OPENING : LINE_BACKGROUND_OPENING;
    small = filter(small, size, (values) => Math.min(...values));
    small = filter(small, size, (values) => Math.max(...values));
    small = filter(small, 3, (values) => values.reduce((a, b) => a + b, 0) / values.length);
    return pilResize(small, src.w, src.h, "bilinear");
  }

  function edgeSlivers(labels, count, w, h, areas) {   // preprocess._edge_slivers
    const boxes = Array.from({ length: count + 1 }, () => [w, h, 0, 0]);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const label = labels[y * w + x];
        if (!label) continue;
        const box = boxes[label];
        box[0] = Math.min(box[0], x); box[1] = Math.min(box[1], y);
        box[2] = Math.max(box[2], x + 1); box[3] = Math.max(box[3], y + 1);
      }
    }
    const depthRows = Math.max(2, Math.floor(h / EDGE_SLIVER)), depthColumns = Math.max(2, Math.floor(w / EDGE_SLIVER));
    const biggest = areas.indexOf(Math.max(...areas)), sliver = new Array(count + 1).fill(false);
    for (let label = 1; label <= count; label++) {
      if (label === biggest) continue;
      const [x0, y0, x1, y1] = boxes[label];
      sliver[label] = ((y0 === 0 || y1 === h) && y1 - y0 <= depthRows) || ((x0 === 0 || x1 === w) && x1 - x0 <= depthColumns);
    }
    return sliver;
  }

  function dropSpecks(ink, grainy, edges) {
    const { w, h } = ink, pool = Math.max(1, Math.ceil(Math.max(w, h) / LABEL_SIDE));
    const mass = boxReduceFloat(ink, pool);
    const level = f32(INK / (pool * pool) - TOLERANCE), faint = f32(FAINT / (pool * pool) - TOLERANCE);
    const cells = Uint8Array.from(mass.d, (value) => (value >= faint ? 1 : 0));
    const found = components(cells, mass.w, mass.h);
    const seeded = new Array(found.count + 1).fill(false);   // components holding ink at INK or above
    for (let i = 0; i < cells.length; i++) if (mass.d[i] >= level) seeded[found.labels[i]] = true;
    if (!seeded.some(Boolean)) return image(w, h);   // no component, or none holds ink at INK
    if (!grainy && found.count === 1) return ink;
    const areas = new Float64Array(found.count + 1);
    for (let i = 0; i < cells.length; i++) areas[found.labels[i]] += mass.d[i];
    for (let label = 0; label <= found.count; label++) if (!seeded[label]) areas[label] = 0;
    const biggest = Math.max(...areas), keep = Array.from(areas, (area, label) => seeded[label] && area >= SPECK_FRACTION * biggest);
    if (edges) {
      const sliver = edgeSlivers(found.labels, found.count, mass.w, mass.h, areas);
      for (let label = 1; label <= found.count; label++) if (sliver[label]) keep[label] = false;
    }
    if (!grainy && keep.every((kept, label) => kept || !seeded[label])) return ink;
    const kept = morphStep(Uint8Array.from(found.labels, (label) => (keep[label] ? 1 : 0)), mass.w, mass.h, true, true);
    const out = image(w, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) out.d[y * w + x] = kept[Math.floor(y / pool) * mass.w + Math.floor(x / pool)] ? ink.d[y * w + x] : 0;
    }
    return out;
  }

  // --- finding the ink (preprocess.ink_map) --------------------------------------------------------

  function inkMap(rgba, width, height) {
    const picture = { rgba, width, height, box: [0, 0, width, height] };
    const factor = Math.max(1, Math.ceil(Math.max(width, height) / OVERVIEW_SIDE));
    let grey = greyPixels(picture, factor), ink = toInk(grey, factor), box = inkBox(ink);
    let origin = [0, 0], scale = factor;
    if (box && factor > 1 && longer(box) >= MIN_EXTENT * Math.max(grey.w, grey.h) && box[3] - box[1] < DETAIL_SIDE) {
      // preprocess._read_closer: small writing is read again from the full-resolution pixels
      const [x0, y0, x1, y1] = box.map((value) => value * factor);
      const margin = Math.floor(Math.max(x1 - x0, y1 - y0) / 3) + 2 * factor;
      const region = [Math.max(0, x0 - margin), Math.max(0, y0 - margin), Math.min(width, x1 + margin), Math.min(height, y1 + margin)];
      const closer = Math.max(1, Math.floor((y1 - y0) / (2 * DETAIL_SIDE)));
      grey = greyPixels({ ...picture, box: region }, closer);
      ink = toInk(grey, closer);
      box = inkBox(ink);
      origin = [region[0], region[1]];
      scale = closer;
    }
    const empty = box === null || longer(box) < MIN_EXTENT * Math.max(grey.w, grey.h) ||
      longer(box) < MIN_STROKES * strokeWidth(crop(ink, box));
    if (empty) return { ink: image(ink.w, ink.h), empty: true, box: null };
    const found = { ink, empty: false, box, origin, scale, size: [width, height] };
    found.inputBox = inputBoxOf(found, box);
    return found;
  }

  function inputBoxOf(found, [x0, y0, x1, y1]) {   // preprocess.InkMap.input_box: ink-map box -> pad pixels
    const { origin: [left, top], scale, size: [width, height] } = found;
    return [left + x0 * scale, top + y0 * scale, Math.min(width, left + x1 * scale), Math.min(height, top + y1 * scale)];
  }

  // --- stage 2: centring (preprocess._center_ink) --------------------------------------------------

  const byScale = (scale) => (scale < 1 ? "box" : "bilinear");   // preprocess._pil_resize's choice

  function resizeBy(src, scale) {
    return pilResize(src, Math.max(1, roundHalfEven(src.w * scale)), Math.max(1, roundHalfEven(src.h * scale)), byScale(scale));
  }

  function normaliseStroke(cropped) {
    const soft = resizeBy(cropped, (STROKE_SCALE * DIGIT) / Math.max(cropped.w, cropped.h));
    const measured = strokeWidth(soft);
    if (measured === 0 || (STROKE_BAND[0] <= measured / STROKE_TARGET && measured / STROKE_TARGET <= STROKE_BAND[1])) {
      return [cropped, soft];
    }
    const thin = measured < STROKE_TARGET, level = f32((thin ? FAINT : INK) - TOLERANCE);
    let mask = Uint8Array.from(soft.d, (value) => (value >= level ? 1 : 0)), w = soft.w, h = soft.h;
    const maskWidth = (values, mw, mh) => strokeWidth(image(mw, mh, Float32Array.from(values)), true);
    let width = maskWidth(mask, w, h);
    if (!thin) {
      const steps = Math.min(roundHalfEven((width - STROKE_TARGET) / 2), Math.max(0, roundHalfEven(width / 2) - 2));
      for (let step = 0; step < steps; step++) mask = morphStep(mask, w, h, step % 2 === 1, false);
    } else {   // grown a step at a time while that brings the width closer to the target
      const frame = framed(mask, w, h, GROW_STEPS + 1, false);
      mask = frame.d; w = frame.w; h = frame.h;
      for (let step = 0; step < GROW_STEPS; step++) {
        const grown = morphStep(mask, w, h, step % 2 === 1, true), grownWidth = maskWidth(grown, w, h);
        if (Math.abs(grownWidth - STROKE_TARGET) >= Math.abs(width - STROKE_TARGET)) break;
        mask = grown; width = grownWidth;
      }
    }
    if (!mask.some(Boolean)) return [cropped, soft];
    const thick = image(w, h, Float32Array.from(mask));
    const box = inkBox(thick);
    return [box ? crop(thick, box) : thick, null];
  }

  function placeByCentreOfMass(digit) {
    const { w, h, d } = digit;
    let total = 0, rowMass = 0, columnMass = 0;
    for (let y = 0; y < h; y++) {
      let row = 0;
      for (let x = 0; x < w; x++) row = f32(row + d[y * w + x]);
      rowMass += row * y;
    }
    for (let x = 0; x < w; x++) {
      let column = 0;
      for (let y = 0; y < h; y++) column = f32(column + d[y * w + x]);
      columnMass += column * x;
      total += column;
    }
    const out = image(SIDE, SIDE);
    if (!(total > 0)) return out;
    // To a ten-thousandth of a pixel first, as the server does: a symmetric drawing's centre lies on the tie.
    const nearest = (value) => roundHalfEven(Math.round(value * 1e4) / 1e4);
    const top = nearest(MNIST_CENTRE[0] - rowMass / total), left = nearest(MNIST_CENTRE[1] - columnMass / total);
    for (let y = Math.max(top, 0); y < Math.min(top + h, SIDE); y++) {
      for (let x = Math.max(left, 0); x < Math.min(left + w, SIDE); x++) out.d[y * SIDE + x] = d[(y - top) * w + (x - left)];
    }
    return out;
  }

  function centerInk(ink, box) {
    let cropped = crop(ink, box), scaled;
    [cropped, scaled] = normaliseStroke(cropped);
    let digit;
    if (scaled && Math.max(cropped.w, cropped.h) >= STROKE_SCALE * DIGIT) digit = boxReduceFloat(scaled, STROKE_SCALE);
    else {
      const scale = DIGIT / Math.max(cropped.w, cropped.h);
      digit = pilResize(cropped, Math.max(1, Math.min(DIGIT, roundHalfEven(cropped.w * scale))),
        Math.max(1, Math.min(DIGIT, roundHalfEven(cropped.h * scale))), byScale(scale));
    }
    const placed = placeByCentreOfMass(digit);
    let top = 0;
    for (const value of placed.d) top = Math.max(top, value);
    if (top > 0) { const factor = f32(1.0 / top); for (let i = 0; i < placed.d.length; i++) placed.d[i] = f32(placed.d[i] * factor); }
    return placed.d;
  }

  // --- several digits? (segment.count_digits) ------------------------------------------------------

  function countDigits(ink) {
    const { w, h } = ink, mask = Uint8Array.from(ink.d, (value) => (value >= INK ? 1 : 0));
    const found = components(mask, w, h);
    if (found.count === 0) return 0;
    const parts = [];
    for (let label = 1; label <= found.count; label++) parts.push({ x0: w, y0: h, x1: 0, y1: 0, area: 0 });
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const label = found.labels[y * w + x];
        if (!label) continue;
        const part = parts[label - 1];
        part.x0 = Math.min(part.x0, x); part.x1 = Math.max(part.x1, x + 1);
        part.y0 = Math.min(part.y0, y); part.y1 = Math.max(part.y1, y + 1);
        part.area += 1;
      }
    }
    if (found.count === 1 && parts[0].x1 - parts[0].x0 <= JOINED_ASPECT * (parts[0].y1 - parts[0].y0)) return 1;
    const biggest = Math.max(...parts.map((part) => part.area));
    let kept = [];
    parts.forEach((part, index) => { if (part.area >= SEG_SPECK_FRACTION * biggest) kept.push({ ...part, label: index + 1 }); });
    if (kept.length > MAX_PIECES) return kept.length;
    const lineHeight = Math.max(...kept.map((part) => part.y1 - part.y0));
    const stroke = Math.max(1.0, strokeWidth(image(w, h, Float32Array.from(mask)), true));
    const narrow = kept.filter((part) => part.x1 - part.x0 <= part.y1 - part.y0).map((part) => part.x1 - part.x0);
    let digitWidth = narrow.length ? median(narrow) : TYPICAL_ASPECT * lineHeight;
    digitWidth = Math.min(0.9 * lineHeight, Math.max(0.45 * lineHeight, digitWidth));
    const pieces = [];
    for (const part of kept) {
      const pw = part.x1 - part.x0, ph = part.y1 - part.y0, partMask = new Uint8Array(pw * ph);
      for (let y = 0; y < ph; y++) {
        for (let x = 0; x < pw; x++) partMask[y * pw + x] = found.labels[(y + part.y0) * w + x + part.x0] === part.label ? 1 : 0;
      }
      part.mask = partMask;
      pieces.push(...splitTouching(part, lineHeight, digitWidth, stroke));
    }
    return mergePieces(pieces, lineHeight).length;
  }

  const widthOf = (part) => part.x1 - part.x0, heightOf = (part) => part.y1 - part.y0;
  const gapOf = (a, b) => Math.max(a.x0, b.x0) - Math.min(a.x1, b.x1);

  function mergePieces(parts, lineHeight) {
    parts = [...parts].sort((a, b) => a.x0 - b.x0);   // a stable sort, as Python's
    if (parts.length > MAX_PIECES) return parts;
    const reach = 1.5 * lineHeight;
    while (parts.length > 1) {
      let best = null;
      for (let i = 0; i < parts.length; i++) {
        for (let j = i + 1; j < parts.length; j++) {
          if (parts[j].x0 - parts[i].x0 > reach) break;
          if (!sameDigit(parts[i], parts[j], lineHeight)) continue;
          const pair = [gapOf(parts[i], parts[j]), i, j];
          if (best === null || pair[0] < best[0] || (pair[0] === best[0] && (pair[1] < best[1] || (pair[1] === best[1] && pair[2] < best[2])))) best = pair;
        }
      }
      if (best === null) break;
      const [, i, j] = best, a = parts[i], b = parts[j];
      parts[i] = { x0: Math.min(a.x0, b.x0), y0: Math.min(a.y0, b.y0), x1: Math.max(a.x1, b.x1), y1: Math.max(a.y1, b.y1), area: a.area + b.area };
      parts.splice(j, 1);
    }
    return parts;
  }

  function sameDigit(a, b, lineHeight) {   // segment._same_digit
    if (Math.max(a.x1, b.x1) - Math.min(a.x0, b.x0) > 1.5 * lineHeight) return false;
    const gap = gapOf(a, b), narrower = Math.min(widthOf(a), widthOf(b));
    const overlapY = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
    const [small, big] = a.area < b.area ? [a, b] : [b, a];
    const mergedWidth = Math.max(a.x1, b.x1) - Math.min(a.x0, b.x0), mergedHeight = Math.max(a.y1, b.y1) - Math.min(a.y0, b.y0);
    const sharesColumns = gap < 0 && (-gap >= 0.6 * narrower || (-gap >= 0.4 * narrower && mergedWidth <= 0.75 * mergedHeight));
    const stacked = overlapY < 0.4 * Math.min(heightOf(a), heightOf(b)) && gap < 0.05 * lineHeight;
    const beside = small.y0 >= big.y0 - 0.1 * lineHeight && small.y1 <= big.y1 + 0.1 * lineHeight;
    const tick = small.area < 0.15 * big.area && heightOf(small) < 0.5 * heightOf(big) && gap < 0.1 * lineHeight && beside;
    const closing = gap < 0 && small.area < 0.35 * big.area && heightOf(small) < 0.8 * heightOf(big);
    const twoStrokes = gap <= 0.06 * lineHeight && Math.min(heightOf(a), heightOf(b)) < 0.75 * Math.max(heightOf(a), heightOf(b)) &&
      Math.abs(a.y0 - b.y0) < 0.15 * lineHeight;
    return sharesColumns || stacked || tick || closing || twoStrokes;
  }

  function splitTouching(part, lineHeight, digitWidth, stroke) {   // segment._split_touching
    const height = Math.max(heightOf(part), 0.8 * lineHeight), pw = widthOf(part);
    if (pw <= JOINED_ASPECT * height) return [part];
    const wide = pw > SPLIT_ASPECT * height;
    let found;
    if (wide) {
      const expected = Math.max(2, roundHalfEven(pw / digitWidth)), step = pw / expected;
      found = cheapestSeam(part.mask, pw, heightOf(part), Math.trunc(0.5 * step), Math.trunc(1.5 * step), step, stroke);
    } else {
      const margin = Math.trunc(MIN_PART * height);
      found = cheapestSeam(part.mask, pw, heightOf(part), margin, pw - margin, pw / 2, stroke);
    }
    if (found === null) return [part];
    const [seam, crossed] = found, ph = heightOf(part);
    const left = new Uint8Array(pw * ph), right = new Uint8Array(pw * ph);
    for (let y = 0; y < ph; y++) {
      for (let x = 0; x < pw; x++) {
        const i = y * pw + x;
        if (x < seam[y]) left[i] = part.mask[i]; else right[i] = part.mask[i];
      }
    }
    const sides = [trimmed(part, left), trimmed(part, right)];
    if (sides.some((side) => side === null)) return [part];
    const shortSide = Math.min(...sides.map(heightOf)) < TALL_SIDES * height;
    if (!wide && (crossed > SINGLE_CROSSING * stroke || shortSide)) return [part];
    return sides.flatMap((side) => splitTouching(side, lineHeight, digitWidth, stroke));
  }

  function trimmed(part, mask) {
    const pw = widthOf(part), box = inkBox(image(pw, heightOf(part), Float32Array.from(mask)), 0.5);
    if (box === null) return null;
    const [x0, y0, x1, y1] = box, out = new Uint8Array((x1 - x0) * (y1 - y0));
    let area = 0;
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) { out[(y - y0) * (x1 - x0) + x - x0] = mask[y * pw + x]; area += mask[y * pw + x]; }
    return { x0: part.x0 + x0, y0: part.y0 + y0, x1: part.x0 + x1, y1: part.y0 + y1, area, mask: out };
  }

  function pooledMask(mask, w, h, pool) {
    const sw = Math.ceil(w / pool), sh = Math.ceil(h / pool), out = new Uint8Array(sw * sh);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) out[Math.floor(y / pool) * sw + Math.floor(x / pool)] = 1;
    return { w: sw, h: sh, d: out };
  }

  function cheapestSeam(mask, width, height, low, high, target, stroke) {   // segment._cheapest_seam
    const pool = Math.max(1, roundHalfEven(height / SEAM_ROWS));
    if (pool > 1) {
      const small = pooledMask(mask, width, height, pool);
      const found = cheapestSeam(small.d, small.w, small.h, Math.floor(low / pool), Math.ceil(high / pool), target / pool, stroke / pool);
      if (found === null) return null;
      const seam = new Int32Array(height);
      for (let y = 0; y < height; y++) seam[y] = Math.min(high - 1, Math.max(low, found[0][Math.floor(y / pool)] * pool + Math.floor(pool / 2)));
      return [seam, found[1] * pool];
    }
    low = Math.max(1, low); high = Math.min(width - 1, high);
    if (high - low < 1) return null;
    const cost = (y, x) => (x < low || x >= high ? Infinity : mask[y * width + x]);
    let total = Float64Array.from({ length: width }, (_, x) => cost(0, x));
    const moves = new Int8Array(width * height);
    for (let y = 1; y < height; y++) {   // segment.carve
      const next = new Float64Array(width);
      for (let x = 0; x < width; x++) {
        let best = total[x], move = 0;
        const fromLeft = x > 0 ? total[x - 1] + 0.05 : Infinity;
        if (fromLeft < best) { best = fromLeft; move = -1; }
        const fromRight = x < width - 1 ? total[x + 1] + 0.05 : Infinity;
        if (fromRight < best) { best = fromRight; move = 1; }
        moves[y * width + x] = move;
        next[x] = best + cost(y, x);
      }
      total = next;
    }
    const spread = Math.max(target - low, high - target, 1);
    let end = 0, endCost = Infinity;
    for (let x = 0; x < width; x++) {
      const value = total[x] + stroke * Math.min(Math.abs(x - target) / spread, 1.0);
      if (value < endCost) { endCost = value; end = x; }
    }
    if (!Number.isFinite(total[end])) return null;
    const seam = new Int32Array(height);
    seam[height - 1] = end;
    for (let y = height - 1; y > 0; y--) seam[y - 1] = seam[y] + moves[y * width + seam[y]];
    let crossed = 0;
    for (let y = 0; y < height; y++) crossed += mask[y * width + seam[y]];
    return [seam, crossed];
  }

  // --- a whole number in one pass (numbre.model.line_model, numbre.reading.line_reader) -------------

  // line_model.line_input: the ink inside `box`, scaled to LINE_CONTENT px tall (BOX filter when
  // shrinking, BILINEAR when enlarging), clipped to 0..1 and padded to LINE_HEIGHT x (k * LINE_STRIDE).
  function lineInput(ink, box) {
    const [x0, y0, x1, y1] = box, width = x1 - x0, height = y1 - y0;
    const scale = Math.min(LINE_CONTENT / height, (LINE_MAX_WIDTH - 2 * LINE_PAD_X) / width);
    const ow = Math.max(1, roundHalfEven(width * scale)), oh = Math.max(1, roundHalfEven(height * scale));
    const resized = pilResize(crop(ink, box), ow, oh, scale < 1 ? "box" : "bilinear");
    const total = Math.ceil((ow + 2 * LINE_PAD_X) / LINE_STRIDE) * LINE_STRIDE;
    const data = new Float32Array(LINE_HEIGHT * total), top = Math.floor((LINE_HEIGHT - oh) / 2);
    for (let y = 0; y < oh; y++) {
      for (let x = 0; x < ow; x++) data[(top + y) * total + LINE_PAD_X + x] = Math.min(1, Math.max(0, resized.d[y * ow + x]));
    }
    // inkColumn: LineInput.ink_column, a network input column as an ink-map column
    return { data, width: total, scale, x0, y0, y1, inkColumn: (column) => x0 + (column - LINE_PAD_X) / scale };
  }

  // line_model.greedy_decode: each frame's best class, runs of one class merged, blanks dropped. A token:
  // {label (1-10 a digit, JUNK_CLASS), first, last, peak (its surest frame), probability (there)}.
  function greedyDecode(logits, frames) {
    const rows = [];
    for (let t = 0; t < frames; t++) rows.push(softmax(Array.from(logits.subarray(t * LINE_CLASSES, (t + 1) * LINE_CLASSES))));
    const best = rows.map((row) => row.indexOf(Math.max(...row)));   // the first of equals, as numpy's argmax
    const tokens = [];
    for (let frame = 0; frame < frames;) {
      const label = best[frame];
      let end = frame;
      while (end + 1 < frames && best[end + 1] === label) end++;
      if (label !== BLANK) {
        let peak = frame;
        for (let t = frame + 1; t <= end; t++) if (rows[t][label] > rows[peak][label]) peak = t;
        tokens.push({ label, first: frame, last: end, peak, probability: rows[peak][label] });
      }
      frame = end + 1;
    }
    return tokens;
  }

  // line_reader.token_boxes: each token's box in ink-map pixels, between the emptiest ink columns that
  // separate its mark (its peak frame, shifted by how far the line's peaks sit off the digits' centres)
  // from its neighbours'.
  function tokenBoxes(ink, prepared, tokens) {
    if (!tokens.length) return [];
    const { y0, y1, x0 } = prepared, w = ink.w, rows = y1 - y0;
    const mask = new Uint8Array(rows * w), weight = new Float32Array(w);
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < w; x++) {
        const value = ink.d[(y0 + y) * w + x];
        mask[y * w + x] = value >= INK ? 1 : 0;
        weight[x] = f32(weight[x] + value);   // band.sum(axis=0): float32, row after row
      }
    }
    let x1 = w;
    for (let x = w - 1; x >= x0; x--) {
      let inked = false;
      for (let y = 0; y < rows && !inked; y++) inked = mask[y * w + x] === 1;
      if (inked) { x1 = x + 1; break; }
    }
    const peaks = tokens.map((token) => prepared.inkColumn(token.peak * LINE_STRIDE + LINE_STRIDE / 2));
    const offset = peaks.length > 1 ? ((peaks[0] - x0) - (x1 - peaks[peaks.length - 1])) / 2 : 0.0;
    const marks = peaks.map((peak) => Math.min(Math.max(peak - offset, x0), x1 - 1));
    const bounds = [x0];
    for (let i = 0; i + 1 < marks.length; i++) {
      const left = marks[i], right = marks[i + 1], a = Math.ceil(left), b = Math.floor(right) + 1;
      if (b - a <= 1) { bounds.push(roundHalfEven((left + right) / 2) + 1); continue; }
      let lowest = Infinity;
      for (let x = a; x < b; x++) lowest = Math.min(lowest, weight[x]);
      const level = f32(lowest + f32(1e-6)), emptiest = [];   // float32, as numpy adds to a float32 scalar
      for (let x = a; x < b; x++) if (weight[x] <= level) emptiest.push(x - a);
      bounds.push(a + emptiest[Math.floor(emptiest.length / 2)]);   // the middle of the emptiest stretch
    }
    bounds.push(x1);
    const boxes = [];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const left = bounds[i], right = Math.max(bounds[i + 1], left + 1);
      let c0 = Infinity, c1 = -1, r0 = Infinity, r1 = -1;
      for (let y = 0; y < rows; y++) {
        for (let x = left; x < Math.min(right, w); x++) {
          if (!mask[y * w + x]) continue;
          c0 = Math.min(c0, x); c1 = Math.max(c1, x); r0 = Math.min(r0, y); r1 = Math.max(r1, y);
        }
      }
      boxes.push(c1 < 0 ? [left, y0, right, y1] : [c0, y0 + r0, c1 + 1, y0 + r1 + 1]);
    }
    return boxes;
  }

  // --- the rejection policy (numbre.model.rejection.Rejector.decide) -------------------------------

  function softmax(values) {
    const top = Math.max(...values), exp = values.map((value) => Math.exp(value - top));
    const sum = exp.reduce((a, b) => a + b, 0);
    return exp.map((value) => value / sum);
  }

  function inkStatistics(pixels) {
    const mask = { w: SIDE, h: SIDE, d: Uint8Array.from(pixels, (value) => (value >= INK ? 1 : 0)) };
    const area = mask.d.reduce((a, b) => a + b, 0), padded = framed(mask.d, SIDE, SIDE, 1, false);
    let edges = 0;
    for (let y = 0; y < padded.h; y++) {
      for (let x = 0; x < padded.w; x++) {
        if (y + 1 < padded.h && padded.d[y * padded.w + x] !== padded.d[(y + 1) * padded.w + x]) edges++;
        if (x + 1 < padded.w && padded.d[y * padded.w + x] !== padded.d[y * padded.w + x + 1]) edges++;
      }
    }
    return [area / (SIDE * SIDE), edges > 0 ? (2.0 * area) / edges : 0.0];
  }

  function decide(logits, pixels, policy) {
    const rule = { temperature: 1.0, min_confidence: 0.0, max_not_a_digit: 1.0, max_ink: 1.0, max_stroke: 28.0, ...(policy || {}) };
    const scaled = Array.from(logits, (value) => value / rule.temperature);
    const probabilities = softmax(scaled.slice(0, DIGITS));
    const notADigit = scaled.length > DIGITS ? softmax(scaled).slice(DIGITS).reduce((a, b) => a + b, 0) : 0;
    const confidence = Math.max(...probabilities);
    let rejected = confidence < rule.min_confidence || notADigit > rule.max_not_a_digit;
    if (rule.max_ink < 1.0 || rule.max_stroke < 28.0) {
      const [ink, stroke] = inkStatistics(pixels);
      rejected = rejected || ink > rule.max_ink || stroke > rule.max_stroke;
    }
    return { probabilities, reason: rejected ? NOT_A_DIGIT : null };
  }

  const round6 = (value) => Math.round(value * 1e6) / 1e6;

  // --- the reader ----------------------------------------------------------------------------------

  const SESSION_OPTIONS = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };

  // `ort` is onnxruntime-web; `model` the ONNX file's bytes; `meta` the model's metadata (/api/model);
  // `lines` the line model's ONNX bytes, or null: then numbers are not read here.
  class Reader {
    constructor(session, meta, lineSession) {
      this.session = session;
      this.meta = meta;
      this.policy = meta.rejection || {};
      this.lineSession = lineSession || null;
      this.queue = Promise.resolve();   // one run at a time, of either model: the runtime runs one at once
    }

    enqueue(session, input) {
      const result = this.queue.then(() => session.run(input));
      this.queue = result.catch(() => {});
      return result;
    }

    run(pixels, ort) {
      const input = { [this.session.inputNames[0]]: new ort.Tensor("float32", pixels, [1, 1, SIDE, SIDE]) };
      return this.enqueue(this.session, input);
    }

    static async create(ort, model, meta, lines = null) {
      const names = meta.class_names || [];
      if (!(names.length === 10 || (names.length === 11 && names[10] === NOT_A_DIGIT))) {
        throw new Error(`the model tells ${names.length} classes apart; reading needs ten digits`);
      }
      const session = await ort.InferenceSession.create(model, SESSION_OPTIONS);
      const lineSession = lines ? await ort.InferenceSession.create(lines, SESSION_OPTIONS) : null;
      return new Reader(session, meta, lineSession);
    }

    // RGBA bytes of the pad -> the JSON of POST /api/read as the line model alone reads it (recognize's
    // Recognizer._read_in_one_pass), each digit with `pixels`: its 28x28. `unsure` says a digit's
    // probability is under LINE_SURE, where the server would also cut the line into digits.
    async read(rgba, width, height, ort) {
      if (!this.lineSession) throw new Error("this page has no line model to read numbers with");
      const found = inkMap(rgba, width, height);
      if (found.empty) return { number: null, digits: [], reason: "empty", unsure: false };
      const prepared = lineInput(found.ink, found.box);
      const input = { [this.lineSession.inputNames[0]]: new ort.Tensor("float32", prepared.data, [1, 1, LINE_HEIGHT, prepared.width]) };
      const output = (await this.enqueue(this.lineSession, input))[this.lineSession.outputNames[0]];
      const logits = output.data, frames = output.dims[1];
      if (output.dims[2] !== LINE_CLASSES) throw new Error(`the line model answers ${output.dims[2]} classes, not ${LINE_CLASSES}`);
      if (!logits.every(Number.isFinite)) throw new Error("the line model answered NaN or infinity for this drawing");
      const tokens = greedyDecode(logits, frames);
      // No symbol at all: the server cuts the line instead; here it is ink that reads as no digit.
      if (!tokens.length) return { number: null, digits: [], reason: NOT_A_DIGIT, unsure: true };
      const boxes = tokenBoxes(found.ink, prepared, tokens);
      const digits = tokens.map((token, index) => {
        const digit = token.label === JUNK_CLASS ? null : token.label - 1;
        const entry = { digit, confidence: round6(token.probability), box: inputBoxOf(found, boxes[index]),
          pixels: centerInk(found.ink, boxes[index]) };
        if (digit === null) entry.reason = NOT_A_DIGIT;
        return entry;
      });
      const readable = digits.every((entry) => entry.digit !== null);
      const answer = { number: readable ? digits.map((entry) => entry.digit).join("") : null, digits,
        unsure: tokens.some((token) => token.probability < LINE_SURE) };
      if (!readable) answer.reason = NOT_A_DIGIT;   // "not a digit" ink makes the number unreadable
      return answer;
    }

    // RGBA bytes of the pad -> the JSON of POST /api/predict (without "image"), plus `pixels`: the 28x28.
    async predict(rgba, width, height, ort) {
      const found = inkMap(rgba, width, height);
      if (found.empty) {
        return { digit: null, confidence: 0, probabilities: new Array(DIGITS).fill(0), reason: "empty", pixels: null };
      }
      const pixels = centerInk(found.ink, found.box);
      const output = await this.run(pixels, ort);
      const logits = Array.from(output[this.session.outputNames[0]].data);
      if (!logits.every(Number.isFinite)) throw new Error("the model answered NaN or infinity for this drawing");
      const { probabilities, reason } = decide(logits, pixels, this.policy);
      const best = probabilities.indexOf(Math.max(...probabilities));
      const sure = !reason && probabilities[best] >= SURE_ALONE;
      if (!sure && countDigits(found.ink) > 1) {
        return { digit: null, confidence: 0, probabilities: new Array(DIGITS).fill(0), reason: "several digits", pixels };
      }
      const answer = { digit: reason ? null : best, confidence: round6(probabilities[best]), probabilities: probabilities.map(round6), pixels };
      if (reason) answer.reason = reason;
      return answer;
    }
  }

  // --- on the page: who answers --------------------------------------------------------------------
  //
  // Served by `numbre serve`, the server answers and this reader is made in the background once the
  // page has loaded (model and runtime fetched while the server is there), so that a request that
  // fails (the server stopped, the network went) is answered here instead. While the browser answers,
  // the server is asked again at most every RETRY_MS (GET /api/health) and takes over when it is back.
  // Saved as a static site (`numbre export --web`), <html data-answerer="browser"> says there is no
  // server: the browser answers from the start. #answerer says which one answers; its data-answerer is
  // "server", "browser", "loading" (no answer yet from here) or "none" (neither can answer).

  const RETRY_MS = 10000;
  const script = typeof document !== "undefined" ? document.currentScript : null;
  const base = script ? new URL(".", script.src).href : "";

  class Page {
    constructor() {
      this.staticSite = document.documentElement.dataset.answerer === "browser";
      this.active = this.staticSite;   // whether this browser answers now
      this.reader = null;
      this.loading = null;
      this.failed = null;
      this.lastTry = 0;
    }

    start() {
      this.show();
      if (this.staticSite) {
        const contest = document.getElementById("view-contest");
        if (contest) contest.hidden = true;   // the contest's digits and scores live on the server
        this.load();
      } else {
        const later = () => setTimeout(() => this.load(), 300);   // after the page's first paint
        if (document.readyState === "complete") later(); else addEventListener("load", later, { once: true });
      }
    }

    load() {
      if (!this.loading) {
        this.loading = this.make().then(
          (reader) => { this.reader = reader; this.show(); return reader; },
          (error) => { this.failed = String(error && error.message ? error.message : error); this.show(); return null; });
      }
      return this.loading;
    }

    async make() {
      const vendor = new URL("vendor/onnxruntime-web/", base).href;
      if (!root.ort) {
        await new Promise((resolve, reject) => {
          const tag = document.createElement("script");
          tag.src = vendor + "ort.wasm.min.js";
          tag.onload = resolve;
          tag.onerror = () => reject(new Error("the in-browser runtime did not load"));
          document.head.append(tag);
        });
      }
      const ort = root.ort;
      ort.env.wasm.numThreads = 1;   // threads need a cross-origin isolated page; a digit or a line needs none
      ort.env.wasm.wasmPaths = vendor;
      const [modelUrl, metaUrl, linesUrl] = this.staticSite
        ? ["../model.onnx", "../model.json", "../line-model.onnx"].map((path) => new URL(path, base).href)
        : ["/api/model.onnx", "/api/model", "/api/line-model.onnx"];
      const [model, meta, lines] = await Promise.all([
        fetch(modelUrl).then((response) => { if (!response.ok) throw new Error(`the model file answered ${response.status}`); return response.arrayBuffer(); }),
        fetch(metaUrl).then((response) => { if (!response.ok) throw new Error(`the model's metadata answered ${response.status}`); return response.json(); }),
        // The line model is optional (a server or site without one): without it, digits only.
        fetch(linesUrl).then((response) => (response.ok ? response.arrayBuffer() : null), () => null),
      ]);
      this.ort = ort;
      try {
        return await Reader.create(ort, new Uint8Array(model), meta, lines && new Uint8Array(lines));
      } catch (error) {
        if (!lines) throw error;
        return Reader.create(ort, new Uint8Array(model), meta);   // a line model the runtime refuses: digits only
      }
    }

    // Called by the page when a request to the server failed: true if this browser answers instead.
    async takeOver() {
      this.lastTry = Date.now();
      const reader = await this.load();
      if (!reader) return false;
      this.active = true;
      this.show();
      return true;
    }

    // Whether the page should ask the server: always when it answers; else now and then, to see if it is back.
    shouldAskServer() {
      if (this.staticSite) return false;
      if (!this.active) return true;
      if (Date.now() - this.lastTry < RETRY_MS) return false;
      this.lastTry = Date.now();
      fetch("/api/health", { cache: "no-store" }).then((response) => {
        if (response.ok) { this.active = false; this.show(); }
      }, () => {});
      return false;
    }

    // The pad's pixels read here: the JSON of POST /api/predict?image=1, or {error} for the page to show.
    async predict(pad, mode) {
      const reader = await this.load();
      if (!reader) return { error: `This page cannot read drawings without the server: ${this.failed}.` };
      if (mode !== "digit" && !reader.lineSession) {
        return { error: "Without the server this page reads one digit at a time: switch to \u201cOne digit\u201d." };
      }
      const pixels = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
      try {
        if (mode !== "digit") {   // the JSON of POST /api/read?image=1, plus `unsure`
          const answer = await reader.read(pixels, pad.width, pad.height, this.ort);
          for (const digit of answer.digits) { digit.image = pngBase64(digit.pixels); delete digit.pixels; }
          return answer;
        }
        const answer = await reader.predict(pixels, pad.width, pad.height, this.ort);
        if (answer.pixels) answer.image = pngBase64(answer.pixels);
        delete answer.pixels;
        return answer;
      } catch (error) {
        return { error: `This browser could not read the drawing: ${error && error.message ? error.message : error}.` };
      }
    }

    show() {
      const where = document.getElementById("answerer");
      if (!where) return;
      const state = this.active ? (this.reader ? "browser" : this.failed ? "none" : "loading") : "server";
      where.dataset.answerer = state;
      where.dataset.reader = this.reader ? "ready" : this.failed ? "failed" : "loading";   // for tests and benchmarks
      document.documentElement.dataset.reading = state;
      where.textContent = {
        server: "Answers come from the server.",
        browser: this.reader && this.reader.lineSession
          ? "Answers come from this browser (offline); numbers are read without cutting."
          : "Answers come from this browser (offline): one digit at a time.",
        loading: "Getting ready to answer in this browser\u2026",
        none: "Neither the server nor this browser can answer.",
      }[state];
    }
  }

  function pngBase64(pixels) {   // the 28x28 as the server's png_base64 makes it: grey, rounded to 8 bits
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = SIDE;
    const context = canvas.getContext("2d"), data = context.createImageData(SIDE, SIDE);
    for (let i = 0; i < SIDE * SIDE; i++) {
      const value = Math.trunc(Math.min(1, Math.max(0, pixels[i])) * 255 + 0.5);
      data.data.set([value, value, value, 255], i * 4);
    }
    context.putImageData(data, 0, 0);
    return canvas.toDataURL("image/png").split(",", 2)[1];
  }

  const api = { Reader, inkMap, centerInk, countDigits, decide, roundHalfEven, pilResize, SIDE, lineInput, greedyDecode,
    tokenBoxes, LINE_SURE };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else {
    api.page = new Page();
    root.NumbreOffline = api;
    api.page.start();
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
