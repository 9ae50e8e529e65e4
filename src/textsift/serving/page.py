"""The page at ``/``: type or paste texts (or upload a CSV), see each label with a probability bar.

One self-contained HTML file (no CDN, no external request): it calls ``/model`` and ``/predict`` of the server
that served it, with the API key typed in the page when the server asks for one (kept in sessionStorage).
"""

PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>textsift</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1d2430; }
  h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
  #model { color: #5b6472; margin-bottom: 1rem; }
  textarea { width: 100%; min-height: 8rem; font: inherit; box-sizing: border-box; padding: .5rem; }
  .row { display: flex; gap: .8rem; align-items: center; margin: .6rem 0; flex-wrap: wrap; }
  input[type=password], input[type=number] { font: inherit; padding: .25rem .4rem; }
  button { font: inherit; padding: .35rem 1rem; cursor: pointer; }
  #status { color: #5b6472; min-height: 1.4em; }
  #status.error { color: #b3261e; }
  table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
  td, th { border-top: 1px solid #dde1e6; padding: .45rem .4rem; vertical-align: top; text-align: left; }
  .bar { display: grid; grid-template-columns: 9rem 1fr 4.2rem; gap: .5rem; align-items: center; margin: .12rem 0; }
  .track { background: #eef0f3; height: .8rem; border-radius: .2rem; overflow: hidden; }
  .fill { background: #3b6fd8; height: 100%; }
  .chosen .fill { background: #1f8a4c; }
  .chosen .name { font-weight: 600; }
  .num { text-align: right; font-variant-numeric: tabular-nums; }
  .note { color: #8a5a00; font-size: .85em; }
</style>
</head>
<body>
<h1>textsift</h1>
<div id="model">loading the model&hellip;</div>
<div class="row" id="keyrow" hidden>
  <label>API key <input type="password" id="key" autocomplete="off" size="40"></label>
</div>
<label for="texts">Texts, one per line<span id="pairhint" hidden> (pairs: TEXT, a tab, SECOND TEXT)</span></label>
<textarea id="texts" placeholder="Type or paste texts here, one per line"></textarea>
<div class="row">
  <button id="predict">Predict</button>
  <label>or a CSV file <input type="file" id="csv" accept=".csv,text/csv"></label>
  <label>top <input type="number" id="topk" min="1" value="5" style="width:4rem"> labels</label>
</div>
<div id="status"></div>
<table id="results" hidden><thead><tr><th>#</th><th>text</th><th>labels</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const AUTH = __AUTH__;
const $ = (id) => document.getElementById(id);
let model = null;

function headers() {
  const h = {"Content-Type": "application/json"};
  const key = $("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}
function status(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

async function call(path, body) {
  const response = await fetch(path, body === undefined ? {headers: headers()} : {method: "POST", headers: headers(), body: JSON.stringify(body)});
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const d = data.detail;
    const message = Array.isArray(d) ? d.map((e) => (e.loc || []).slice(1).join(".") + ": " + e.msg).join("; ") : (d || response.statusText);
    throw new Error(response.status + ": " + message);
  }
  return data;
}

async function loadModel() {
  if (AUTH && !$("key").value.trim()) { $("model").textContent = "This server needs an API key: type it above."; return; }
  try {
    model = await call("/model");
    sessionStorage.setItem("textsift-key", $("key").value.trim());
    const acc = Object.entries(model.metrics || {}).filter(([k]) => k.endsWith("/accuracy") || k.endsWith("/micro_f1")).map(([k, v]) => k + " " + Number(v).toFixed(3));
    $("model").textContent = model.model_type + " model, " + (model.multilabel ? "multilabel, " : "") + model.labels.length +
      " labels (" + model.labels.join(", ") + "), runtime " + model.runtime + (acc.length ? "; " + acc.join(", ") : "");
    $("pairhint").hidden = !model.pairs;
    $("topk").max = model.labels.length;
    $("topk").value = Math.min(Number($("topk").value) || 5, model.labels.length);
  } catch (err) { $("model").textContent = "Cannot read the model: " + err.message; }
}

function parseCsv(text) {  // RFC 4180: quoted fields, doubled quotes, newlines inside quotes
  const rows = []; let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\\n" || c === "\\r") {
      if (c === "\\r" && text[i + 1] === "\\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => r.some((f) => f.trim() !== ""));
}

function inputs() {
  const lines = $("texts").value.split(/\\r?\\n/).filter((l) => l.trim() !== "");
  if (model && model.pairs) {
    const texts = [], pairs = [];
    for (const l of lines) { const [a, ...b] = l.split("\\t"); texts.push(a); pairs.push(b.join("\\t")); }
    return {texts, pairs};
  }
  return {texts: lines};
}

function render(texts, result) {
  const body = $("results").tBodies[0];
  body.replaceChildren();
  result.predictions.forEach((p, i) => {
    const tr = body.insertRow();
    tr.insertCell().textContent = i + 1;
    const cell = tr.insertCell();
    cell.textContent = texts[i];
    if (p.truncated) { const n = document.createElement("div"); n.className = "note"; n.textContent = "cut at the model's maximum length"; cell.append(n); }
    const bars = tr.insertCell();
    const chosen = new Set(result.multilabel ? p.labels : [p.label]);
    for (const {label, probability} of p.top_k) {
      const bar = document.createElement("div");
      bar.className = "bar" + (chosen.has(label) ? " chosen" : "");
      bar.dataset.label = label;
      const name = document.createElement("span"); name.className = "name"; name.textContent = label;
      const track = document.createElement("div"); track.className = "track";
      const fill = document.createElement("div"); fill.className = "fill"; fill.style.width = (100 * probability).toFixed(1) + "%";
      track.append(fill);
      const num = document.createElement("span"); num.className = "num"; num.textContent = (100 * probability).toFixed(1) + "%";
      bar.append(name, track, num);
      bars.append(bar);
    }
  });
  $("results").hidden = false;
}

async function predict() {
  if (!model) await loadModel();
  if (!model) { status(AUTH && !$("key").value.trim() ? "Type the API key first: this server answers only with it." : $("model").textContent, true); return; }
  const body = inputs();
  if (!body.texts.length) { status("Type a text first.", true); return; }
  const limit = model.limits.max_request_texts, texts = body.texts, out = {predictions: [], multilabel: model.multilabel};
  status("predicting " + texts.length + " texts\\u2026");
  try {
    for (let start = 0; start < texts.length; start += limit) {  // the server takes max_request_texts at a time
      const part = {texts: texts.slice(start, start + limit), top_k: Math.max(1, Number($("topk").value) || 1)};
      if (body.pairs) part.pairs = body.pairs.slice(start, start + limit);
      const r = await call("/predict", part);
      out.predictions.push(...r.predictions);
    }
    render(texts.map((t, i) => body.pairs ? t + "  \\u2192  " + body.pairs[i] : t), out);
    status(texts.length + " texts predicted.");
  } catch (err) { status(err.message, true); }
}

$("csv").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const rows = parseCsv(await file.text());
  if (!rows.length) { status("The CSV file is empty.", true); return; }
  const header = rows[0].map((h) => h.trim().toLowerCase());
  let col = header.indexOf("text"), pairCol = header.indexOf("text_pair"), data = rows.slice(1);
  if (col < 0) { col = 0; pairCol = -1; data = rows; }  // no 'text' column: the first column, no header
  $("texts").value = data.map((r) => (r[col] || "").replace(/\\s+/g, " ") + (pairCol >= 0 ? "\\t" + (r[pairCol] || "").replace(/\\s+/g, " ") : "")).join("\\n");
  status(data.length + " texts read from " + file.name + ".");
  await predict();
});
$("predict").addEventListener("click", predict);
$("key").addEventListener("change", loadModel);
$("texts").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) predict(); });
$("keyrow").hidden = !AUTH;
$("key").value = sessionStorage.getItem("textsift-key") || "";
loadModel();
</script>
</body>
</html>
"""


def page(auth: bool) -> str:
    """The page; ``auth``: the server needs an API key (the page asks for it before calling the API)."""
    return PAGE_TEMPLATE.replace("__AUTH__", "true" if auth else "false")
