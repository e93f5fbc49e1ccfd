// vae-book's latent explorer: a VAE's encoder and decoder run in the browser.
// Written by vaelib.explorer.explorer_html (static pages) and used by
// vaelib.explorer.DrawingPad (ipywidgets, through anywidget). The Python
// twins of these functions are in vaelib/export.py and vaelib/drawing.py.
var VAELIB = (function () {
  "use strict";
  // Python's base-85 alphabet with & < > * | swapped for . , : [ ]
  const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" +
    "abcdefghijklmnopqrstuvwxyz!#$%.()[+-;,=:?@^_`{]}~";
  const PEN = 22; // stroke width on the 280-pixel drawing canvas
  const ACT = {
    relu: (v) => (v > 0 ? v : 0),
    elu: (v) => (v > 0 ? v : Math.exp(v) - 1),
    silu: (v) => v / (1 + Math.exp(-v)),
    linear: (v) => v,
  };
  const sigmoid = (v) => 1 / (1 + Math.exp(-v));

  // --- unpacking what export.pack wrote ---------------------------------
  function base85(text, size) {
    const digit = new Int16Array(128).fill(-1);
    for (let i = 0; i < ALPHABET.length; i++) {
      digit[ALPHABET.charCodeAt(i)] = i;
    }
    const out = new Uint8Array((text.length / 5) * 4);
    for (let g = 0, o = 0; g < text.length; g += 5, o += 4) {
      let value = 0;
      for (let k = 0; k < 5; k++) {
        value = value * 85 + digit[text.charCodeAt(g + k)];
      }
      out[o] = value >>> 24; out[o + 1] = (value >>> 16) & 255;
      out[o + 2] = (value >>> 8) & 255; out[o + 3] = value & 255;
    }
    return out.subarray(0, size);
  }

  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream()
      .pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  async function unpack(packed) {
    const data = await inflate(base85(packed.text, packed.size));
    const arrays = {};
    let offset = 0;
    for (const [name, dtype, n] of packed.parts) {
      if (dtype === "int16") { // low-byte plane, then high-byte plane
        const codes = new Int16Array(n);
        for (let i = 0; i < n; i++) {
          codes[i] = (data[offset + n + i] << 8) | data[offset + i];
        }
        arrays[name] = codes;
        offset += 2 * n;
      } else {
        const width = { float32: 4, int8: 1, uint8: 1 }[dtype];
        const copy = data.slice(offset, offset + n * width).buffer;
        arrays[name] = dtype === "float32" ? new Float32Array(copy)
          : dtype === "int8" ? new Int8Array(copy) : new Uint8Array(copy);
        offset += n * width;
      }
    }
    return arrays;
  }

  function network(shapes, arrays, prefix) { // weights stored input-major here
    return shapes.map((s, i) => {
      const W = arrays[prefix + i + ".codes"], WT = new Float32Array(W.length);
      for (let o = 0; o < s.out; o++) {
        for (let k = 0; k < s.in; k++) WT[k * s.out + o] = W[o * s.in + k];
      }
      return { n: s.in, m: s.out, act: ACT[s.act], WT,
        scale: arrays[prefix + i + ".scale"],
        b: arrays[prefix + i + ".bias"] };
    });
  }

  // --- the networks: dense layers, int16 weights with a scale per row ---
  // y = act(scale * (codes @ x) + b), adding one input's column at a time and
  // skipping inputs that are 0 (blank pixels, ReLUs that are off).
  function forward(layers, input) {
    let x = input;
    for (const l of layers) {
      const y = new Float64Array(l.m);
      for (let k = 0; k < l.n; k++) {
        const v = x[k];
        if (v === 0) continue;
        const col = k * l.m;
        for (let o = 0; o < l.m; o++) y[o] += l.WT[col + o] * v;
      }
      for (let o = 0; o < l.m; o++) y[o] = l.act(y[o] * l.scale[o] + l.b[o]);
      x = y;
    }
    return x;
  }

  // --- a drawing made MNIST-style: vaelib.drawing.mnist_style ------------
  function areaWeights(n, m) {
    const step = n / m, w = new Float64Array(m * n);
    for (let i = 0; i < m; i++) {
      const start = i * step, end = (i + 1) * step;
      const last = Math.min(Math.ceil(end), n);
      for (let k = Math.floor(start); k < last; k++) {
        w[i * n + k] = (Math.min(end, k + 1) - Math.max(start, k)) / step;
      }
    }
    return w;
  }

  function preprocess(ink, height, width, box, size) {
    let top = height, bottom = -1, left = width, right = -1;
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        if (ink[r * width + c] > 0) {
          if (r < top) top = r;
          if (r > bottom) bottom = r;
          if (c < left) left = c;
          if (c > right) right = c;
        }
      }
    }
    const out = new Float64Array(size * size);
    if (bottom < 0) return out;
    const h = bottom - top + 1, w = right - left + 1;
    const scale = box / Math.max(h, w);
    const newH = Math.max(1, Math.floor(h * scale + 0.5));
    const newW = Math.max(1, Math.floor(w * scale + 0.5));
    const wr = areaWeights(h, newH), wc = areaWeights(w, newW);
    const tmp = new Float64Array(newH * w); // wr @ crop
    for (let i = 0; i < newH; i++) {
      for (let k = 0; k < h; k++) {
        const a = wr[i * h + k];
        if (a === 0) continue;
        const src = (top + k) * width + left;
        for (let c = 0; c < w; c++) tmp[i * w + c] += a * ink[src + c];
      }
    }
    const small = new Float64Array(newH * newW); // (wr @ crop) @ wc.T
    for (let i = 0; i < newH; i++) {
      for (let j = 0; j < newW; j++) {
        let s = 0;
        for (let c = 0; c < w; c++) s += tmp[i * w + c] * wc[j * w + c];
        small[i * newW + j] = s;
      }
    }
    let mass = 0, rows = 0, cols = 0;
    for (let i = 0; i < newH; i++) {
      for (let j = 0; j < newW; j++) {
        const v = small[i * newW + j];
        mass += v; rows += i * v; cols += j * v;
      }
    }
    const row0 = Math.floor(size / 2 - rows / mass + 0.5);
    const col0 = Math.floor(size / 2 - cols / mass + 0.5);
    for (let i = 0; i < newH; i++) {
      for (let j = 0; j < newW; j++) {
        const r = row0 + i, c = col0 + j;
        if (r >= 0 && r < size && c >= 0 && c < size) {
          out[r * size + c] = small[i * newW + j];
        }
      }
    }
    return out;
  }

  // --- scores: vaelib.export.fixed_noise_scores ---------------------------
  function score(x, mu, logvar, logitsPerDraw) {
    let kl = 0;
    for (let j = 0; j < mu.length; j++) {
      kl += 0.5 * (mu[j] * mu[j] + Math.exp(logvar[j]) - 1 - logvar[j]);
    }
    let recon = 0;
    for (const logits of logitsPerDraw) {
      for (let d = 0; d < x.length; d++) { // softplus(l) - x l, stably
        const l = logits[d];
        recon += Math.max(l, 0) - l * x[d] +
          Math.log1p(Math.exp(-Math.abs(l)));
      }
    }
    return kl + recon / logitsPerDraw.length;
  }

  function moreTypicalThan(value, quantiles) {
    let above = 0;
    for (const q of quantiles) if (q > value) above++;
    return (100 * above) / quantiles.length;
  }

  // --- pictures ---------------------------------------------------------
  function paint(canvas, pixels) { // pixel means in [0, 1] -> ink on white
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(canvas.width, canvas.height);
    for (let k = 0; k < pixels.length; k++) {
      const ink = 255 - Math.round(pixels[k] * 255);
      image.data[4 * k] = image.data[4 * k + 1] = image.data[4 * k + 2] = ink;
      image.data[4 * k + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
  }

  // --- the drawing pad: strokes, undo, clear; reports ink in [0, 1] --------
  function pad(canvas, onChange) {
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const strokes = [];
    let drawing = null, pending = false;
    function line(points) {
      ctx.lineWidth = PEN; ctx.lineCap = "round"; ctx.lineJoin = "round";
      ctx.strokeStyle = "#000"; ctx.fillStyle = "#000";
      if (points.length === 1) {
        ctx.beginPath();
        ctx.arc(points[0][0], points[0][1], PEN / 2, 0, 2 * Math.PI);
        ctx.fill();
        return;
      }
      ctx.beginPath();
      ctx.moveTo(points[0][0], points[0][1]);
      for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
      ctx.stroke();
    }
    function redraw() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      strokes.forEach(line);
      if (drawing) line(drawing);
    }
    function ink() {
      const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      const out = new Float64Array(canvas.width * canvas.height);
      for (let k = 0; k < out.length; k++) out[k] = rgba[4 * k + 3] / 255;
      return out;
    }
    function changed() { // at most once per frame while the pen moves
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        onChange(ink(), !drawing); // settled: no stroke in progress
      });
    }
    function at(e) { // canvas pixels under the pointer, inside the border
      const r = canvas.getBoundingClientRect();
      const x = e.clientX - r.left - canvas.clientLeft;
      const y = e.clientY - r.top - canvas.clientTop;
      return [x * canvas.width / canvas.clientWidth,
        y * canvas.height / canvas.clientHeight];
    }
    let pointer = null; // the one pointer drawing: no palms, second fingers
    canvas.addEventListener("pointerdown", (e) => {
      if (drawing || !e.isPrimary || e.button !== 0) return;
      pointer = e.pointerId;
      canvas.setPointerCapture(e.pointerId);
      drawing = [at(e)];
      redraw(); changed();
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!drawing || e.pointerId !== pointer) return;
      drawing.push(at(e));
      redraw(); changed();
    });
    const finish = (e) => {
      if (!drawing || e.pointerId !== pointer) return;
      strokes.push(drawing); drawing = null;
      redraw(); changed();
    };
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", finish);
    return {
      undo() { strokes.pop(); redraw(); changed(); },
      clear() { strokes.length = 0; redraw(); changed(); },
      ink, strokes,
    };
  }

  // --- the static explorer ----------------------------------------------
  async function explorer(root, meta) {
    const arrays = await unpack(meta.packed);
    const decoder = network(meta.decoder, arrays, "decoder");
    const encoder = meta.encoder ? network(meta.encoder, arrays, "encoder")
      : null;
    const L = meta.latent, eps = arrays.eps;
    const inputs = [...root.querySelectorAll(".sliders input")];
    const dims = inputs.map((el) => parseInt(el.dataset.dim, 10));
    const view = root.querySelector("canvas.decoded");
    const state = { base: new Float64Array(L), updates: 0 };
    const api = { state }; // what the tests and the benchmark read
    root.vaelib = api;

    const map = root.querySelector(".map");
    let overlay = null;
    if (map) {
      const dots = map.querySelector("canvas.dots");
      overlay = map.querySelector("canvas.overlay");
      const ctx = dots.getContext("2d"), codes = arrays["map.codes"];
      const side = dots.width, labels = arrays["map.labels"];
      ctx.globalAlpha = 0.5;
      for (let i = 0; i < labels.length; i++) {
        ctx.fillStyle = meta.colours[labels[i]];
        const x = (codes[2 * i] / 127 + 1) / 2 * side;
        const y = (1 - codes[2 * i + 1] / 127) / 2 * side;
        ctx.fillRect(x - 1, y - 1, 2, 2);
      }
    }
    const toMap = (v, axis) => (axis === 0 ? (v / meta.limit + 1) / 2
      : (1 - v / meta.limit) / 2) * overlay.width;

    function currentZ() { // the drawing's exact code until a slider moves
      const z = Float64Array.from(state.base);
      if (state.exact) return z;
      inputs.forEach((el, i) => { z[dims[i]] = parseFloat(el.value); });
      return z;
    }
    function drawOverlay(z) {
      const ctx = overlay.getContext("2d");
      ctx.clearRect(0, 0, overlay.width, overlay.height);
      ctx.beginPath(); // the code z
      ctx.arc(toMap(z[0], 0), toMap(z[1], 1), 4, 0, 2 * Math.PI);
      ctx.fillStyle = "#fff"; ctx.fill();
      ctx.lineWidth = 1.5; ctx.strokeStyle = "#000"; ctx.stroke();
      if (state.mu) { // the drawing's q(z|x): mu +- 2 sigma
        const s = overlay.width / (2 * meta.limit);
        ctx.beginPath();
        ctx.ellipse(toMap(state.mu[0], 0), toMap(state.mu[1], 1),
          Math.max(2 * Math.exp(0.5 * state.logvar[0]) * s, 1),
          Math.max(2 * Math.exp(0.5 * state.logvar[1]) * s, 1),
          0, 0, 2 * Math.PI);
        ctx.lineWidth = 2; ctx.strokeStyle = "#d00"; ctx.stroke();
      }
    }
    function render() { // the decoder's mean image at the sliders' code
      const z = currentZ();
      paint(view, forward(decoder, z).map(sigmoid));
      inputs.forEach((el) => {
        el.nextElementSibling.value = parseFloat(el.value).toFixed(2);
      });
      if (overlay) drawOverlay(z);
      state.z = z;
    }
    const moved = () => { state.exact = false; render(); };
    inputs.forEach((el) => el.addEventListener("input", moved));
    if (map) {
      map.addEventListener("click", (e) => {
        const r = map.getBoundingClientRect();
        const u = (e.clientX - r.left) / r.width;
        const v = (e.clientY - r.top) / r.height;
        state.base[0] = (u * 2 - 1) * meta.limit;
        state.base[1] = (1 - v * 2) * meta.limit;
        inputs.forEach((el, i) => { el.value = state.base[dims[i]]; });
        moved();
      });
    }

    function encodeDrawing(ink) { // everything a stroke changes
      const t0 = performance.now();
      const x = preprocess(ink, meta.pad, meta.pad, meta.box, meta.width);
      const out = forward(encoder, x);
      const mu = out.slice(0, L), logvar = out.slice(L, 2 * L);
      const logits = [];
      for (let k = 0; k < eps.length / L; k++) {
        const z = new Float64Array(L);
        for (let j = 0; j < L; j++) {
          z[j] = mu[j] + Math.exp(0.5 * logvar[j]) * eps[k * L + j];
        }
        logits.push(forward(decoder, z));
      }
      const value = score(x, mu, logvar, logits);
      const recon = forward(decoder, mu).map(sigmoid);
      state.encodeMs = performance.now() - t0;
      return { x, mu, logvar, logits, value, recon };
    }
    function cleared() { // back to z = 0 and blank pictures
      Object.assign(state, { input: null, mu: null, encodeMs: null,
        exact: false, base: new Float64Array(L) });
      const blank = new Float64Array(meta.width * meta.width);
      paint(root.querySelector("canvas.input"), blank);
      root.querySelectorAll("canvas.draw").forEach((c) => paint(c, blank));
      inputs.forEach((el) => { el.value = 0; });
      root.querySelector(".result").textContent = "Draw a digit in the box.";
    }
    function onInk(ink) {
      state.ink = ink;
      if (ink.some((v) => v > 0)) drawn(ink); else cleared();
      render();
      state.updates++;
      root.dataset.updates = String(state.updates);
    }
    function drawn(ink) {
      const r = encodeDrawing(ink);
      Object.assign(state, { input: r.x, mu: r.mu, logvar: r.logvar,
        recon: r.recon, score: r.value });
      state.draws = r.logits.map((l) => l.map(sigmoid));
      state.percent = moreTypicalThan(r.value, arrays.reference);
      paint(root.querySelector("canvas.input"), r.x);
      root.querySelectorAll("canvas.draw")
        .forEach((c, k) => paint(c, state.draws[k]));
      root.querySelector(".result").innerHTML = "&minus;ELBO <b>" +
        r.value.toFixed(1) +
        "</b> nats: more " +
        "typical than <b>" + state.percent.toFixed(1) + " %</b> of " +
        meta.referenceName + " " +
        "(<span class='ms'>" + state.encodeMs.toFixed(1) + " ms</span>)";
      state.base = Float64Array.from(r.mu);
      state.exact = true;
      inputs.forEach((el, i) => {
        el.value = Math.max(-meta.limit, Math.min(meta.limit, r.mu[dims[i]]));
      });
    }
    if (encoder) {
      const drawingPad = pad(root.querySelector("canvas.pad"), onInk);
      const button = (name) => root.querySelector("button." + name);
      button("undo").addEventListener("click", drawingPad.undo);
      button("clear").addEventListener("click", drawingPad.clear);
      api.pad = drawingPad;
    }
    render();
    root.dataset.ready = "1";
    return api;
  }

  return { unpack, pad, explorer };
})();
if (typeof window !== "undefined") window.VAELIB = VAELIB;
