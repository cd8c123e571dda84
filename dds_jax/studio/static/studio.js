// DDS studio page: plain JS, no build step. Talks to dds_jax/studio/app.py.
"use strict";
const $ = (id) => document.getElementById(id);
const S = { info: null, seed: null, picked: new Set(), label: null, undo: [], part: 1, image: null,
            painting: false, last: null, runId: null, jobs: {} };   // jobs: the last state of each kind

function showError(msg) { const e = $("error"); e.textContent = msg; e.hidden = !msg; }

// quiet: a failure is not shown (polling a run directory that does not exist yet)
async function api(path, opts = {}, quiet = false) {
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { data = { error: `HTTP ${r.status}` }; }
  if (!r.ok) {
    const msg = (data && data.error) || `HTTP ${r.status}`;
    if (!quiet) showError(msg);
    throw new Error(msg);
  }
  if (!quiet) showError("");
  return data;
}
const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                         body: JSON.stringify(body) });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A background job: poll it, drive a progress bar, return its result (or show its error).
async function waitJob(job, bar, status, onTick) {
  while (true) {
    let j;   // quiet polls: they must not clear a message shown meanwhile (e.g. a refused upload)
    try { j = await api(`/api/jobs/${job.id}`, {}, true); } catch (e) { showError(e.message); throw e; }
    S.jobs[j.kind] = j;
    if (bar) bar.style.width = `${Math.round(100 * (j.state === "done" ? 1 : j.fraction))}%`;
    if (status) status.textContent = `${j.kind}: ${j.state}${j.message ? " — " + j.message : ""}`;
    if (onTick) await onTick(j);
    if (j.state === "done") return j.result;
    if (j.state === "error") { showError(j.error); throw new Error(j.error); }
    await sleep(400);
  }
}

function figure(url, caption, cls = "px") {
  const f = document.createElement("figure");
  const img = document.createElement("img");
  img.src = url; img.className = cls; img.alt = caption;
  const c = document.createElement("figcaption"); c.textContent = caption;
  f.append(img, c);
  return f;
}

// ---------------------------------------------------------------- 1. samples
async function sample() {
  const job = await post("/api/sample", { seeds: $("sample-seeds").value });
  const res = await waitJob(job, $("sample-progress"));
  const grid = $("sample-grid"); grid.innerHTML = "";
  for (const s of res.samples) {
    const f = figure(s.url, `seed ${s.seed}`);
    f.classList.add("choice"); f.dataset.seed = s.seed;
    f.addEventListener("click", () => choose(s.seed, s.url, f));
    grid.append(f);
  }
}

function choose(seed, url, fig) {
  for (const f of $("sample-grid").children) f.classList.toggle("selected", f === fig);
  S.seed = seed;
  const n = S.info.image_size;
  S.label = new Uint8Array(n * n); S.undo = [];
  const img = new Image();
  img.onload = () => { S.image = img; draw(); };
  img.src = url;
  $("paint-seed").textContent = `labelling seed ${seed}`;
}

// ---------------------------------------------------------------- 2. painting
function partNames() { return $("parts").value.split(",").map((s) => s.trim()).filter(Boolean); }
function colorOf(k) { return S.info.palette[(k - 1) % S.info.palette.length]; }
function rgb(hex) { return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)); }

function partButtons() {
  const box = $("part-buttons"); box.innerHTML = "";
  partNames().forEach((name, i) => {
    const b = document.createElement("button");
    b.className = "part-btn" + (S.part === i + 1 ? " active" : "");
    b.dataset.part = i + 1;
    b.innerHTML = `<span class="swatch" style="background:${colorOf(i + 1)}"></span>`;
    b.append(name);
    b.addEventListener("click", () => { S.part = i + 1; $("eraser").checked = false; partButtons(); });
    box.append(b);
  });
  if (S.part > partNames().length) S.part = 1;
}

function draw() {
  const cv = $("paint"), ctx = cv.getContext("2d"), n = S.info.image_size;
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (S.image) ctx.drawImage(S.image, 0, 0, cv.width, cv.height);
  if (!S.label) return;
  const off = document.createElement("canvas"); off.width = n; off.height = n;
  const o = off.getContext("2d"), d = o.createImageData(n, n);
  const alpha = Math.round(255 * $("opacity").value / 100);
  for (let i = 0; i < n * n; i++) {
    const k = S.label[i];
    if (!k) continue;
    const [r, g, b] = rgb(colorOf(k));
    d.data.set([r, g, b, alpha], 4 * i);
  }
  o.putImageData(d, 0, 0);
  ctx.drawImage(off, 0, 0, cv.width, cv.height);
}

function cellAt(ev) {
  const cv = $("paint"), rect = cv.getBoundingClientRect(), n = S.info.image_size;
  return [(ev.clientX - rect.left) / rect.width * n, (ev.clientY - rect.top) / rect.height * n];
}

function dab(x, y) {
  const n = S.info.image_size, size = +$("brush").value, r = size / 2;
  const value = $("eraser").checked ? 0 : S.part;
  const cx = Math.floor(x), cy = Math.floor(y);
  for (let j = Math.floor(y - r); j <= Math.ceil(y + r); j++)
    for (let i = Math.floor(x - r); i <= Math.ceil(x + r); i++) {
      if (i < 0 || j < 0 || i >= n || j >= n) continue;
      const inside = (i + 0.5 - x) ** 2 + (j + 0.5 - y) ** 2 <= r * r || (i === cx && j === cy);
      if (inside) S.label[j * n + i] = value;
    }
}

function stroke(ev) {
  const [x, y] = cellAt(ev);
  const [x0, y0] = S.last || [x, y];
  const steps = Math.max(1, Math.ceil(Math.hypot(x - x0, y - y0) * 2));
  for (let t = 1; t <= steps; t++) dab(x0 + (x - x0) * t / steps, y0 + (y - y0) * t / steps);
  S.last = [x, y];
  draw();
}

function setupPainter() {
  const cv = $("paint");
  cv.addEventListener("mousedown", (ev) => {
    if (!S.label) { showError("choose a sample to label first (step 1)"); return; }
    S.undo.push(S.label.slice()); if (S.undo.length > 50) S.undo.shift();
    S.painting = true; S.last = null; stroke(ev);
  });
  cv.addEventListener("mousemove", (ev) => { if (S.painting) stroke(ev); });
  window.addEventListener("mouseup", () => { S.painting = false; S.last = null; });
  $("undo-btn").addEventListener("click", () => { if (S.undo.length) { S.label = S.undo.pop(); draw(); } });
  $("clear-btn").addEventListener("click", () => {
    if (S.label) { S.undo.push(S.label.slice()); S.label.fill(0); draw(); } });
  $("brush").addEventListener("input", () => { $("brush-value").textContent = $("brush").value; });
  $("opacity").addEventListener("input", draw);
  $("parts").addEventListener("input", () => { partButtons(); draw(); });
}

// The label as a PNG with exact part colours on black (what `segment train` reads).
function labelBlob() {
  const n = S.info.image_size, off = document.createElement("canvas");
  off.width = n; off.height = n;
  const o = off.getContext("2d"), d = o.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const k = S.label[i];
    const [r, g, b] = k ? rgb(colorOf(k)) : [0, 0, 0];
    d.data.set([r, g, b, 255], 4 * i);
  }
  o.putImageData(d, 0, 0);
  return new Promise((res) => off.toBlob(res, "image/png"));
}

async function sendLabel(blob, name) {
  if (S.seed === null) { showError("choose a sample to label first (step 1)"); return null; }
  const form = new FormData();
  form.append("file", blob, name); form.append("seed", S.seed); form.append("parts", $("parts").value);
  const res = await api("/api/label", { method: "POST", body: form });
  S.picked.add(S.seed);
  S.label = Uint8Array.from(res.classes.flat()); draw();
  const px = Object.entries(res.pixels).map(([k, v]) => `${k}: ${v} px`).join(", ");
  $("label-status").textContent = `label of seed ${res.seed} saved (${px})`;
  return res;
}

// ---------------------------------------------------------------- 3. train + masks
async function train() {
  // the label on the canvas is the one to train on (saved again if it was repainted)
  if (S.seed !== null && S.label && S.label.some((v) => v)) await sendLabel(await labelBlob(), `seed_${S.seed}.png`);
  const job = await post("/api/train", { seeds: [...S.picked], parts: $("parts").value,
                                        epochs: +$("epochs").value });
  const res = await waitJob(job, $("train-progress"), $("train-status"));
  $("train-status").textContent = `segmenter trained on seed(s) ${res.seeds.join(", ")}: parts ` +
    `${res.parts.join(", ")}, final loss ${res.final_loss.toFixed(4)}`;
  $("dds-parts").value = res.parts.join(",");
  await masks();
}

async function masks() {
  const job = await post("/api/masks", { seeds: $("mask-seeds").value });
  const res = await waitJob(job, $("train-progress"));
  for (const domain of ["source", "target"]) {
    const grid = $(`masks-${domain}`); grid.innerHTML = "";
    for (const m of res[domain]) grid.append(figure(m.overlay, `seed ${m.seed}`));
  }
}

// ---------------------------------------------------------------- 4. DDS
const COLUMNS = [["source", "x_s"], ["target", "x_t"], ["mask_source", "y_s"], ["mask_target", "y_t"],
                 ["crossover", "x_c"], ["dds", "x̂"]];

function resultsTable(details) {
  const box = document.createElement("div");
  for (const [direction, rows] of Object.entries(details.directions || {})) {
    const t = document.createElement("table"); t.className = "results"; t.dataset.direction = direction;
    t.innerHTML = `<caption>${direction}</caption><tr><th>seed</th>` +
      COLUMNS.map(([, c]) => `<th>${c}</th>`).join("") + "<th>optimisation</th></tr>";
    for (const r of rows) {
      const tr = document.createElement("tr"); tr.className = "seed-row"; tr.dataset.seed = r.seed;
      tr.innerHTML = `<td>${r.seed}</td>` + COLUMNS.map(([k, c]) =>
        `<td><img class="px result-${k}" src="${r.images[k]}" alt="${c} seed ${r.seed}"></td>`).join("") +
        `<td>${r.gif ? `<img class="px gif" src="${r.gif}" alt="GIF seed ${r.seed}">` : ""}</td>`;
      t.append(tr);
    }
    box.append(t);
  }
  return box;
}

async function runDDS() {
  const job = await post("/api/dds", { seeds: $("dds-seeds").value, iterations: +$("iterations").value,
                                      batch_size: +$("batch-size").value, parts: $("dds-parts").value });
  S.runId = job.run;
  let shown = -1;
  const refresh = async () => {
    try {
      const d = await api(`/api/run/${job.run}`, {}, true);
      const n = Object.values(d.directions || {}).reduce((a, r) => a + r.length, 0);
      if (n !== shown) {
        shown = n;
        const box = $("dds-results"); box.innerHTML = "";
        const a = document.createElement("a");
        a.href = `/download/run/${job.run}`; a.textContent = "download results (zip)"; a.id = "download-run";
        box.append(a, resultsTable(d));
      }
    } catch (_) { /* the run directory appears once the models are loaded */ }
  };
  await waitJob(job, $("dds-progress"), $("dds-status"), refresh);
  await refresh();
  listRuns();
}

// ---------------------------------------------------------------- 5. browse
async function listRuns() {
  const res = await api("/api/runs");
  const ul = $("run-list"); ul.innerHTML = "";
  for (const r of res.runs) {
    const li = document.createElement("li");
    li.textContent = `${r.name}  [${r.kinds.join(", ")}]`; li.dataset.run = r.id;
    li.addEventListener("click", () => showRun(r.id));
    ul.append(li);
  }
}

async function showRun(id) {
  const d = await api(`/api/run/${id}`);
  const v = $("run-view"); v.innerHTML = "";
  const h = document.createElement("h3"); h.textContent = d.name; v.append(h);
  const a = document.createElement("a"); a.href = `/download/run/${id}`; a.textContent = "download (zip)";
  v.append(a);
  for (const [name, text] of Object.entries(d.reports)) {
    const t = document.createElement("h3"); t.textContent = name;
    const pre = document.createElement("pre"); pre.className = "report"; pre.textContent = text;
    v.append(t, pre);
  }
  if (d.run) {
    const p = document.createElement("p"); p.className = "muted";
    p.textContent = `seeds ${d.run.seeds.join(", ")}; ${d.run.failures.length} failure(s); ` +
                    `total ${d.run.timings.total_s ?? "?"} s`;
    v.append(p);
  }
  for (const im of d.images) v.append(figure(im.url, im.name, "sheet"));
  v.append(resultsTable(d));
}

// ---------------------------------------------------------------- start
async function start() {
  S.info = await api("/api/info");
  const i = S.info;
  $("models").textContent = `source ${i.source_ckpt} · target ${i.target_ckpt} · segmenter ${i.segmenter} · ` +
                            `${i.image_size}×${i.image_size}, mode ${i.mode}`;
  $("parts").value = i.label_parts; $("iterations").value = i.iterations;
  $("batch-size").value = i.batch_size; $("dds-parts").value = i.parts;
  partButtons(); setupPainter(); draw();
  const guard = (fn) => async () => { try { await fn(); } catch (e) { console.log(e); } };
  $("sample-btn").addEventListener("click", guard(sample));
  $("save-label-btn").addEventListener("click", guard(async () => {
    if (!S.label) { showError("choose a sample to label first (step 1)"); return; }
    await sendLabel(await labelBlob(), `seed_${S.seed}.png`); }));
  $("upload-btn").addEventListener("click", guard(async () => {
    const f = $("mask-file").files[0];
    if (!f) { showError("choose a PNG file to upload"); return; }
    await sendLabel(f, f.name); }));
  $("train-btn").addEventListener("click", guard(train));
  $("masks-btn").addEventListener("click", guard(masks));
  $("dds-btn").addEventListener("click", guard(runDDS));
  $("refresh-runs").addEventListener("click", guard(listRuns));
  await listRuns();
  document.body.dataset.ready = "1";
}
start();
