// perfagent's web UI: a few pages over the agent's own API (/api/v1),
// rendered in the browser, refreshed at the evaluation interval. No build
// step and nothing from the network but the agent: uPlot draws the charts.

const main = document.getElementById("main");

// el builds an element; strings become text, never HTML.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class APIError extends Error {
  constructor(status, type, message) { super(message); this.status = status; this.type = type; }
}

// api calls the agent's API and returns the envelope's data.
async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const resp = await fetch("/api/v1" + path, opts);
  let env;
  try { env = await resp.json(); } catch { throw new APIError(resp.status, "internal", `${resp.status} ${resp.statusText}`); }
  if (env.status !== "success") throw new APIError(resp.status, env.errorType, env.error);
  return env.data;
}

// apiAll reads every page of a list: the items under key of each page,
// following next_page_token.
async function apiAll(path, key) {
  const sep = path.includes("?") ? "&" : "?";
  let data = await api(path + sep + "limit=500");
  let items = data[key];
  while (data.next_page_token) {
    data = await api(path + sep + "limit=500&page_token=" + encodeURIComponent(data.next_page_token));
    items = items.concat(data[key]);
  }
  return { ...data, [key]: items };
}

const fmt = {
  num(v, digits = 3) {
    if (v === undefined || v === null || Number.isNaN(v)) return "–";
    return new Intl.NumberFormat(undefined, { notation: Math.abs(v) >= 1e4 ? "compact" : "standard", maximumSignificantDigits: digits }).format(v);
  },
  secs(v) { if (v === undefined || v === null || Number.isNaN(v)) return "–"; return v >= 1 ? fmt.num(v) + " s" : fmt.num(v * 1000) + " ms"; },
  pct(v) { return v === undefined || v === null || Number.isNaN(v) ? "–" : (v * 100).toFixed(1) + " %"; },
  time(t) { if (!t || t.startsWith("0001")) return "–"; return new Date(t).toLocaleString(); },
};

function signal(inst, name, quantile) {
  const s = (inst.signals || []).find(x => x.name === name && (quantile === undefined || x.quantile === quantile));
  return s ? s.value : undefined;
}

// fill replaces node's children; arrays among them are flattened, and
// empty strings and nulls left out.
function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter(c => c !== "" && c !== null && c !== undefined && c !== false));
}

function message(text, error) { return el("div", { class: "message" + (error ? " error" : ""), role: error ? "alert" : "status" }, text); }

// table renders rows with sortable columns: [{title, value(row), render(row), num}].
function table(columns, rows, state = {}) {
  const body = el("tbody");
  const sorted = [...rows];
  if (state.sort !== undefined) {
    const c = columns[state.sort];
    sorted.sort((a, b) => {
      const x = c.value(a), y = c.value(b);
      const r = typeof x === "number" && typeof y === "number" ? x - y : String(x ?? "").localeCompare(String(y ?? ""));
      return state.desc ? -r : r;
    });
  }
  for (const row of sorted) {
    body.append(el("tr", {}, columns.map(c => el("td", { class: c.num ? "num" : "" }, c.render ? c.render(row) : fmtCell(c.value(row))))));
  }
  const head = el("tr", {}, columns.map((c, i) => el("th", { scope: "col", "aria-sort": state.sort === i ? (state.desc ? "descending" : "ascending") : undefined },
    c.value ? el("button", { type: "button", onclick: () => { state.desc = state.sort === i ? !state.desc : false; state.sort = i; state.rerender?.(); } }, c.title) : c.title)));
  if (sorted.length === 0) body.append(el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, "None.")));
  return el("table", {}, el("thead", {}, head), body);
}

function fmtCell(v) { return v === undefined || v === null ? "–" : typeof v === "number" ? fmt.num(v) : v; }

// chart draws series over time with uPlot; lines are [{label, values: [[t, v]…]}].
function chart(title, lines, { unit = "", target, height = 180, range } = {}) {
  const box = el("div", { class: "chart", "data-chart": title }, el("h3", {}, title));
  const points = lines.flatMap(l => l.values.map(p => p[0]));
  if (points.length === 0) { box.append(el("p", { class: "muted" }, "No data in this range.")); return box; }
  // The range's ends carry the target line across the whole chart.
  const times = [...new Set([...points, ...(target && range ? range : [])])].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const data = [times];
  const series = [{}];
  const colors = ["#0b5cad", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#57606a"];
  lines.forEach((l, i) => {
    const ys = new Array(times.length).fill(null);
    for (const [t, v] of l.values) ys[index.get(t)] = v;
    data.push(ys);
    series.push({ label: l.label, stroke: colors[i % colors.length], width: 1.5 });
  });
  if (target) {
    data.push(times.map(() => target.value));
    series.push({ label: target.label, stroke: "#cf222e", dash: [6, 4], width: 1 });
  }
  const opts = { width: 420, height, series, axes: [{}, { size: 64, values: (u, vals) => vals.map(v => fmt.num(v) + unit) }], legend: { live: false },
    scales: range ? { x: { time: true, range: () => range } } : {} };
  box.append(el("div"));
  requestAnimationFrame(() => { opts.width = Math.max(300, box.clientWidth - 12); new uPlot(opts, data, box.lastChild); });
  return box;
}

function sparkline(values) {
  const box = el("div", { class: "spark" });
  if (values.length < 2) return box;
  const data = [values.map(p => p[0]), values.map(p => p[1])];
  requestAnimationFrame(() => new uPlot({ width: 120, height: 28, cursor: { show: false }, legend: { show: false }, axes: [{ show: false }, { show: false }],
    scales: { x: { time: false } }, series: [{}, { stroke: "#0b5cad", width: 1 }] }, data, box));
  return box;
}

// historyOf turns an instance's history into [[t, v]…] per signal and quantile.
function historyOf(detail) {
  const out = {};
  for (const s of detail.history || []) out[s.name + (s.quantile ? "@" + s.quantile : "")] = s.values.map(([t, v]) => [Number(t), Number(v)]);
  return out;
}

// lastCollection is the end of the histories a page asks for, in Unix
// seconds: the last collection, which every client sees the same during a
// cycle, so that their requests share one answer; now before the first.
function lastCollection(health) {
  return health.last_collection ? Date.parse(health.last_collection) / 1000 : Date.now() / 1000;
}

// ---- pages: each mounts into main and returns an update function ----

const pages = {};

pages.fleet = async function () {
  const state = { filter: "", engine: "" };
  const counts = el("div", { class: "counts" });
  const search = el("input", { type: "search", "aria-label": "filter instances", placeholder: "instance, engine or model", oninput: e => { state.filter = e.target.value; render(); } });
  const engine = el("select", { "aria-label": "engine", onchange: e => { state.engine = e.target.value; render(); } }, el("option", { value: "" }, "all engines"));
  const holder = el("div");
  fill(main, el("h1", {}, "Fleet"), counts, el("div", { class: "filters" }, el("label", {}, "Filter ", search), engine), holder);
  let data = { instances: [], bottlenecks: [], health: {}, targets: [], spark: {} };
  const tableState = { sort: 0, rerender: () => render() };
  function stateOf(inst) {
    const t = data.targets.find(x => x.instance === inst.instance);
    if (!data.health.source_up || (t && t.health !== "up")) return ["source down", "bad"];
    const bs = data.bottlenecks.filter(b => b.instance === inst.instance);
    if (bs.some(b => b.state === "firing")) return ["bottleneck: " + bs.filter(b => b.state === "firing").map(b => b.id || b.rule).join(", "), "firing"];
    if (bs.length) return ["pending: " + bs.map(b => b.id || b.rule).join(", "), "pending"];
    return ["ok", "ok"];
  }
  function render() {
    const engines = [...new Set(data.instances.map(i => i.engine))].sort();
    if (engine.options.length !== engines.length + 1) fill(engine, el("option", { value: "" }, "all engines"), engines.map(e => el("option", { value: e, selected: e === state.engine }, e)));
    fill(counts, el("div", {}, el("strong", {}, data.instances.length), "instances"),
      engines.map(e => el("div", {}, el("strong", {}, data.instances.filter(i => i.engine === e).length), e)),
      el("div", {}, el("strong", { class: "firing" }, new Set(data.bottlenecks.filter(b => b.state === "firing").map(b => b.instance)).size), "with a bottleneck"));
    const f = state.filter.toLowerCase();
    const rows = data.instances.filter(i => (!state.engine || i.engine === state.engine) && (!f || [i.instance, i.engine, i.model].some(x => x.toLowerCase().includes(f))));
    fill(holder, table([
      { title: "Instance", value: i => i.instance, render: i => el("a", { href: "/instances/" + encodeURIComponent(i.instance) }, i.instance) },
      { title: "Engine", value: i => i.engine },
      { title: "Model", value: i => i.model },
      { title: "State", value: i => stateOf(i)[0], render: i => { const [t, c] = stateOf(i); return el("span", { class: c, "data-state": c }, t); } },
      { title: "TTFT p95", num: true, value: i => signal(i, "llm_time_to_first_token_seconds", "0.95"), render: i => fmt.secs(signal(i, "llm_time_to_first_token_seconds", "0.95")) },
      { title: "ITL p95", num: true, value: i => signal(i, "llm_inter_token_latency_seconds", "0.95"), render: i => fmt.secs(signal(i, "llm_inter_token_latency_seconds", "0.95")) },
      { title: "Waiting", num: true, value: i => signal(i, "llm_requests_waiting") },
      { title: "KV cache", num: true, value: i => signal(i, "llm_kv_cache_usage_ratio"), render: i => fmt.pct(signal(i, "llm_kv_cache_usage_ratio")) },
      { title: "Tokens/s", num: true, value: i => signal(i, "llm_generation_tokens_per_second") },
      { title: "Errors", num: true, value: i => signal(i, "llm_request_error_ratio"), render: i => fmt.pct(signal(i, "llm_request_error_ratio")) },
      { title: "TTFT p95, 15 min", render: i => sparkline(data.spark[i.instance] || []) },
    ], rows, tableState));
  }
  return async function update() {
    const [inst, bn, health] = await Promise.all([apiAll("/instances", "instances"), apiAll("/bottlenecks", "bottlenecks"), api("/health")]);
    // Only the targets that are not up change an instance's state.
    const targets = health.targets && health.targets.total > health.targets.up ? (await apiAll("/targets", "targets")).targets.filter(t => t.health !== "up") : [];
    data = { instances: inst.instances, bottlenecks: bn.bottlenecks, health, targets, spark: data.spark };
    const end = lastCollection(health);
    await Promise.all(data.instances.slice(0, 50).map(async i => {
      const d = await api(`/instances/${encodeURIComponent(i.instance)}?start=${end - 900}&end=${end}`);
      data.spark[i.instance] = historyOf(d)["llm_time_to_first_token_seconds@0.95"] || [];
    }));
    render();
  };
};

// forecastList says, per resource of the instance and of its model pool,
// how long until it saturates at the current growth (docs/forecasts.md).
function forecastList(fs) {
  if (!fs.length) return el("p", { class: "muted" }, "No saturation ahead: neither the KV cache nor the queue grows toward its limit.");
  const what = { kv_cache: "KV cache full (90 %)", queue: "queue at 5 waiting" };
  return el("ul", {}, fs.map(f => el("li", {}, `${what[f.resource] || f.resource}${f.instance ? "" : ` (pool ${f.engine} ${f.model})`} in about ${Math.max(1, Math.round(f.seconds / 60))} min`)));
}

// costList says what the instance costs, when its GPUs are priced
// (docs/cost.md), in the currency of the prices.
function costList(c) {
  if (!c) return el("p", { class: "muted" }, "Not priced: cost.gpu_hour_prices names no price for this instance's accelerator.");
  const cur = c.currency;
  const items = [`${fmt.num(c.per_hour)} ${cur} per hour: ${c.gpus} × ${c.accelerator} (GPU count from ${c.gpus_source})`];
  if (c.prompt_per_million_tokens !== undefined) items.push(`${fmt.num(c.prompt_per_million_tokens)} ${cur} per million prompt tokens`);
  if (c.generation_per_million_tokens !== undefined) items.push(`${fmt.num(c.generation_per_million_tokens)} ${cur} per million generated tokens`);
  if (c.idle_per_hour !== undefined) items.push(`${fmt.num(c.idle_per_hour)} ${cur} per hour idle (under-utilised, B6)`);
  return el("ul", {}, items.map(i => el("li", {}, i)));
}

// costChange is a recommendation's expected cost change: per hour, and
// per million tokens of each direction the instances produced.
function costChange(r) {
  if (!r.cost) return "";
  const c = r.cost;
  const signed = v => (v > 0 ? "+" : "") + fmt.num(v);
  const items = [`${signed(c.per_hour.change)} ${c.currency} per hour`];
  if (c.prompt_per_million_tokens) items.push(`${signed(c.prompt_per_million_tokens.change)} per million prompt tokens`);
  if (c.generation_per_million_tokens) items.push(`${signed(c.generation_per_million_tokens.change)} per million generated tokens`);
  return el("ul", { title: c.basis }, items.map(i => el("li", {}, i)));
}

pages.instance = async function (name) {
  const ranges = { "1h": 3600, "6h": 21600, "24h": 86400 };
  let range = new URLSearchParams(location.search).get("range") || "1h";
  const head = el("p", { class: "muted" });
  const picker = el("div", { class: "filters", role: "group", "aria-label": "range" });
  const charts = el("div", { class: "charts" });
  const rest = el("div");
  fill(main, el("h1", {}, "Instance ", name), head, picker, charts, rest);
  function drawPicker() {
    fill(picker, "Range ", Object.keys(ranges).map(r => el("button", { type: "button", class: "action" + (r === range ? " primary" : ""), "aria-pressed": String(r === range),
      onclick: () => { range = r; history.replaceState(null, "", "?range=" + r); drawPicker(); update(); } }, r)));
  }
  drawPicker();
  async function startWorkflow(rec, button, note) {
    button.disabled = true;
    try {
      const w = await api("/workflows", { recommendation: rec.id, instance: name });
      navigate("/workflows/" + encodeURIComponent(w.id));
    } catch (e) {
      fill(note, message(e.message, true));
      button.disabled = false;
    }
  }
  async function update() {
    const end = lastCollection(await api("/health"));
    const [d, bn, recs] = await Promise.all([
      api(`/instances/${encodeURIComponent(name)}?start=${end - ranges[range]}&end=${end}`),
      api(`/bottlenecks?instance=${encodeURIComponent(name)}`),
      api(`/recommendations?instance=${encodeURIComponent(name)}`),
    ]);
    fill(head, `${d.engine} serving ${d.model}, as of ${fmt.time(d.time)}.`);
    const hs = historyOf(d);
    const q = s => ["0.5", "0.95", "0.99"].map(x => ({ label: "p" + x, values: hs[s + "@" + x] || [] }));
    const one = (label, s) => [{ label, values: hs[s] || [] }];
    const span = { range: [end - ranges[range], end] };
    fill(charts, 
      chart("Time to first token", q("llm_time_to_first_token_seconds"), { ...span, unit: " s", target: d.slo.ttft_p95_seconds ? { label: "SLO p95", value: d.slo.ttft_p95_seconds } : undefined }),
      chart("Inter-token latency", q("llm_inter_token_latency_seconds"), { ...span, unit: " s", target: d.slo.itl_p95_seconds ? { label: "SLO p95", value: d.slo.itl_p95_seconds } : undefined }),
      chart("Queue time", q("llm_queue_time_seconds"), { ...span, unit: " s" }),
      chart("Requests", [...one("running", "llm_requests_running"), ...one("waiting", "llm_requests_waiting")], span),
      chart("KV cache usage", one("KV cache", "llm_kv_cache_usage_ratio"), span),
      chart("Preemptions per second", one("preemptions", "llm_preemptions_per_second"), span),
      chart("Tokens per second", [...one("prompt", "llm_prompt_tokens_per_second"), ...one("generated", "llm_generation_tokens_per_second")], span),
      chart("Error ratio", one("errors", "llm_request_error_ratio"), { ...span, target: d.slo.error_ratio ? { label: "SLO", value: d.slo.error_ratio } : undefined }),
    );
    const note = el("div");
    fill(rest, 
      el("h2", {}, "Time to saturation"),
      forecastList(d.forecasts || []),
      el("h2", {}, "Cost"),
      costList(d.cost),
      el("h2", {}, "Bottlenecks"),
      table([
        { title: "Rule", value: b => b.rule, render: b => b.runbook_url ? el("a", { href: b.runbook_url }, b.rule) : b.rule },
        { title: "Id", value: b => b.id },
        { title: "State", value: b => b.state, render: b => el("span", { class: b.state }, b.state) },
        { title: "Severity", value: b => b.severity, render: b => el("span", { class: b.severity }, b.severity) },
        { title: "Since", value: b => b.active_at, render: b => fmt.time(b.active_at) },
        { title: "Summary", value: b => b.summary },
        { title: "Evidence", render: b => el("ul", {}, (b.evidence || []).map(s => el("li", {}, `${s.labels.__name__ || ""}${s.labels.quantile ? " p" + s.labels.quantile : ""} = ${fmt.num(s.value)}`))) },
      ], bn.bottlenecks),
      el("h2", {}, `Firing in the last ${range}`),
      table([
        { title: "Rule", value: p => p.rule }, { title: "Id", value: p => p.id },
        { title: "Severity", value: p => p.severity, render: p => el("span", { class: p.severity }, p.severity) },
        { title: "From", value: p => p.from, render: p => fmt.time(p.from) }, { title: "To", value: p => p.to, render: p => fmt.time(p.to) },
      ], d.bottlenecks || []),
      el("h2", {}, "Recommendations"), note,
      table([
        { title: "Rank", num: true, value: r => r.rank },
        { title: "Change", value: r => r.id, render: r => r.action.flag ? el("span", {}, el("code", {}, r.action.flag), ` ${r.action.current ?? "?"} → ${r.action.proposed} ${r.action.unit || ""}`) : `${r.action.kind} ${r.action.from ?? ""} → ${r.action.to ?? ""}` },
        { title: "Expected effect", render: r => el("ul", {}, (r.effects || []).map(e => el("li", {}, `${e.signal}${e.quantile ? " p" + e.quantile : ""} ${e.direction}${e.estimate !== undefined ? ` (${fmt.num(e.current)} → ${fmt.num(e.estimate)})` : ""}`))) },
        { title: "Cost change", num: true, value: r => r.cost ? r.cost.per_hour.change : undefined, render: costChange },
        { title: "Confidence", num: true, value: r => r.confidence, render: r => fmt.pct(r.confidence) },
        { title: "Risk", value: r => r.risk },
        { title: "", render: r => r.action.flag ? el("button", { type: "button", class: "action primary", onclick: e => startWorkflow(r, e.target, note) }, "Start workflow") : "" },
      ], recs.recommendations),
      el("h2", {}, "Settings"),
      table([{ title: "Setting", value: s => s[0] }, { title: "Value", value: s => s[1].value }, { title: "Read from", value: s => s[1].source }], Object.entries(d.settings || {}), { sort: 0 }),
    );
  }
  return update;
};

pages.workflow = async function (id) {
  const note = el("div");
  const body = el("div");
  fill(main, el("h1", {}, "Workflow ", id), note, body);
  async function act(path, payload, what) {
    try {
      await api(`/workflows/${encodeURIComponent(id)}/${path}`, payload);
      fill(note, message(what + " recorded."));
      await update();
    } catch (e) {
      fill(note, message(`${what} refused: ${e.message}`, true));
    }
  }
  async function update() {
    const w = await api(`/workflows/${encodeURIComponent(id)}`);
    const c = w.change;
    const gate = (w.gates || []).find(g => !g.closed_at || g.closed_at.startsWith("0001"));
    const comment = el("input", { type: "text", "aria-label": "comment", placeholder: "comment" });
    const reason = el("input", { type: "text", "aria-label": "reason", placeholder: "reason" });
    const finished = ["succeeded", "rejected", "expired", "cancelled", "aborted", "rolled_back"].includes(w.state);
    fill(body, 
      el("p", {}, "State ", el("strong", { "data-state": w.state }, w.state), `, requested by ${w.requester}.`),
      el("p", {}, el("code", {}, c.flag), ` ${c.from} → ${c.to} ${c.unit || ""} on ${c.engine} serving ${c.model}. ${c.risk ? "Risk: " + c.risk : ""}`),
      el("div", { class: "progress", "aria-label": "stages" }, (w.stages || []).map((s, i) =>
        el("span", { class: i < w.stage ? "done" : i === w.stage && !finished ? "current" : "" }, `${s.name}: ${(s.instances || []).join(", ")}`))),
      (w.still_changed || []).length ? el("p", { class: w.state === "needs_attention" ? "bad" : "" }, "Changed now: " + w.still_changed.join(", ")) : "",
      w.state === "needs_attention" ? el("p", {}, "The rollback failed for these instances. Retry it with Roll back, or restore one by hand and say so: ",
        w.still_changed.map(inst => el("button", { type: "button", class: "action", onclick: () => act(`instances/${encodeURIComponent(inst)}/resolve`, { reason: reason.value }, "Resolution of " + inst) }, "Restored " + inst))) : "",
      gate ? el("div", { class: "filters" }, `Gate ${gate.name} waits for a decision until ${fmt.time(gate.expires_at)}.`, comment,
        el("button", { type: "button", class: "action primary", onclick: () => act("approve", { proposal_hash: w.proposal_hash, gate: gate.name, comment: comment.value }, "Approval") }, "Approve"),
        el("button", { type: "button", class: "action", onclick: () => act("reject", { proposal_hash: w.proposal_hash, gate: gate.name, comment: comment.value }, "Rejection") }, "Reject")) : "",
      finished ? "" : el("div", { class: "filters" }, reason,
        el("button", { type: "button", class: "action danger", onclick: () => act("abort", { reason: reason.value }, "Abort") }, "Abort"),
        el("button", { type: "button", class: "action danger", onclick: () => act("rollback", { reason: reason.value }, "Rollback") }, "Roll back")),
      el("h2", {}, "Validation"),
      (w.results || []).length ? (w.results || []).map(r => el("div", {},
        el("h3", {}, `${r.stage}: `, el("span", { class: r.verdict }, r.verdict), ` (${r.reason})`),
        el("p", { class: "muted" }, r.basis || ""),
        table([
          { title: "Metric", value: m => m.metric },
          { title: "Verdict", value: m => m.verdict, render: m => el("span", { class: m.verdict }, m.verdict) },
          { title: "Canary mean", num: true, value: m => m.canary_mean },
          { title: "Baseline mean", num: true, value: m => m.baseline_mean },
          { title: "Effect", num: true, value: m => m.baseline_mean ? m.canary_mean / m.baseline_mean - 1 : undefined, render: m => m.baseline_mean ? fmt.pct(m.canary_mean / m.baseline_mean - 1) : "–" },
          { title: "p-value", num: true, value: m => m.p_value },
          { title: "Reason", value: m => m.reason },
        ], r.metrics || []))) : el("p", { class: "muted" }, "No stage validated yet."),
      el("h2", {}, "Events"),
      table([
        { title: "Time", value: e => e.time, render: e => fmt.time(e.time) },
        { title: "Event", value: e => e.type },
        { title: "From → to", value: e => `${e.from} → ${e.to}` },
        { title: "Actor", value: e => e.actor },
        { title: "Reason", value: e => e.reason },
      ], w.events || []),
    );
  }
  return update;
};

function listPage(title, path, params, columns, key) {
  return async function () {
    const query = new URLSearchParams(location.search);
    const inputs = params.map(p => el("input", { type: "search", "aria-label": p, placeholder: p, value: query.get(p) || "" }));
    const holder = el("div");
    const state = { rerender: () => draw() };
    let rows = [];
    const apply = () => {
      const q = new URLSearchParams();
      inputs.forEach((inp, i) => inp.value && q.set(params[i], inp.value));
      history.replaceState(null, "", q.toString() ? "?" + q : location.pathname);
      update();
    };
    inputs.forEach(inp => inp.addEventListener("change", apply));
    const draw = () => fill(holder, table(columns, rows, state));
    fill(main, el("h1", {}, title), params.length ? el("div", { class: "filters" }, "Filter ", inputs) : "", holder);
    async function update() {
      const data = await apiAll(path + location.search, key);
      rows = data[key];
      draw();
    }
    return update;
  };
}

const bottleneckColumns = [
  { title: "Instance", value: b => b.instance, render: b => el("a", { href: "/instances/" + encodeURIComponent(b.instance) }, b.instance) },
  { title: "Rule", value: b => b.rule }, { title: "Id", value: b => b.id }, { title: "Category", value: b => b.category },
  { title: "Severity", value: b => b.severity, render: b => el("span", { class: b.severity }, b.severity) },
  { title: "State", value: b => b.state, render: b => el("span", { class: b.state }, b.state) },
  { title: "Since", value: b => b.active_at, render: b => fmt.time(b.active_at) }, { title: "Summary", value: b => b.summary },
];
pages.bottlenecks = listPage("Bottlenecks", "/bottlenecks", ["instance", "engine", "model", "category", "severity", "state"], bottleneckColumns, "bottlenecks");
pages.recommendations = listPage("Recommendations", "/recommendations", ["instance", "engine", "model", "id"], [
  { title: "Rank", num: true, value: r => r.rank },
  { title: "Instance", value: r => r.instance, render: r => r.instance ? el("a", { href: "/instances/" + encodeURIComponent(r.instance) }, r.instance) : (r.action.instances || []).join(", ") },
  { title: "Id", value: r => r.id },
  { title: "Change", render: r => r.action.flag ? `${r.action.flag} ${r.action.current ?? "?"} → ${r.action.proposed}` : `${r.action.kind} ${r.action.from ?? ""} → ${r.action.to ?? ""}` },
  { title: "Confidence", num: true, value: r => r.confidence, render: r => fmt.pct(r.confidence) },
  { title: "Risk", value: r => r.risk },
], "recommendations");
pages.workflows = listPage("Workflows", "/workflows", ["state", "engine", "model"], [
  { title: "Workflow", value: w => w.id, render: w => el("a", { href: "/workflows/" + encodeURIComponent(w.id) }, w.id) },
  { title: "State", value: w => w.state }, { title: "Flag", value: w => w.change.flag },
  { title: "Change", render: w => `${w.change.from} → ${w.change.to}` }, { title: "Model", value: w => w.change.model },
  { title: "Created", value: w => w.created_at, render: w => fmt.time(w.created_at) },
], "workflows");

pages.rules = async function () {
  const holder = el("div");
  fill(main, el("h1", {}, "Rules"), holder);
  return async function update() {
    const data = await api("/rules");
    fill(holder, ...data.groups.map(g => el("section", {},
      el("h2", {}, g.name, " ", el("span", { class: "muted" }, `every ${g.interval_seconds} s, last ${fmt.time(g.last_evaluation)}`)),
      table([
        { title: "Rule", value: r => r.name }, { title: "Health", value: r => r.health, render: r => el("span", { class: r.health === "ok" ? "ok" : "bad" }, r.health) },
        { title: "Active", num: true, value: r => r.active_alerts }, { title: "Last error", value: r => r.last_error || "" },
        { title: "Evaluation", num: true, value: r => r.evaluation_time_seconds, render: r => fmt.secs(r.evaluation_time_seconds) },
      ], g.rules))));
  };
};

pages.status = async function () {
  const holder = el("div");
  fill(main, el("h1", {}, "Status"), holder);
  return async function update() {
    const [h, cfg] = await Promise.all([api("/health"), api("/config")]);
    const targets = h.targets ? (await apiAll("/targets", "targets")).targets : [];
    fill(holder, 
      table([{ title: "", value: r => r[0] }, { title: "", value: r => r[1] }], [
        ["status", h.status], ["mode", h.mode], ["source up", String(h.source_up)], ["ready", String(h.ready)],
        ["last collection", fmt.time(h.last_collection)], ["instances", h.instances], ["version", h.version], ["shard", h.shard ? h.shard.index + " of " + h.shard.count : ""],
        ["evaluation interval", h.evaluation_interval_seconds + " s"], ["Alertmanagers", (h.alertmanagers || []).join(", ") || "none"],
      ]),
      h.targets ? [el("h2", {}, "Targets"), el("p", {}, `${h.targets.total} targets: ${h.targets.up} up, ${h.targets.down} down, ${h.targets.unknown} unknown`), table([
        { title: "Target", value: t => t.url }, { title: "Engine", value: t => t.engine }, { title: "Health", value: t => t.health, render: t => el("span", { class: t.health === "up" ? "ok" : "bad" }, t.health) },
        { title: "Last scrape", value: t => t.last_scrape, render: t => fmt.time(t.last_scrape) }, { title: "Error", value: t => t.last_error },
      ], targets)] : "",
      el("h2", {}, "Configuration in force"), el("pre", {}, cfg.yaml));
  };
};

// ---- routing and refresh ----

const routes = [
  [/^\/$/, "fleet"], [/^\/instances\/(.+)$/, "instance"], [/^\/workflows\/(.+)$/, "workflow"],
  [/^\/bottlenecks$/, "bottlenecks"], [/^\/recommendations$/, "recommendations"], [/^\/workflows$/, "workflows"],
  [/^\/rules$/, "rules"], [/^\/status$/, "status"],
];

let timer, generation = 0, interval = 15000;

async function show() {
  clearTimeout(timer);
  const gen = ++generation;
  const path = location.pathname;
  const [re, name] = routes.find(([re]) => re.test(path)) || [null, null];
  document.querySelectorAll("nav a[data-page]").forEach(a => a.toggleAttribute("aria-current", a.dataset.page === name || (name === "instance" && a.dataset.page === "fleet") || (name === "workflow" && a.dataset.page === "workflows")));
  if (!name) { fill(main, message("No such page: " + path, true)); return; }
  const arg = re.exec(path)[1];
  const update = await pages[name](arg && decodeURIComponent(arg));
  document.title = "perfagent · " + (main.querySelector("h1")?.textContent || name);
  const tick = async () => {
    if (gen !== generation) return;
    try {
      await update();
      document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      const stale = main.querySelector(".message.error[data-refresh]");
      if (stale) stale.remove();
    } catch (e) {
      if (!main.querySelector(".message.error[data-refresh]")) {
        const m = message(e.message, true);
        m.dataset.refresh = "";
        main.prepend(m);
      }
    }
    if (gen === generation) timer = setTimeout(tick, interval);
  };
  await tick();
}

function navigate(href) {
  history.pushState(null, "", href);
  show();
  main.focus();
}

document.addEventListener("click", e => {
  const a = e.target.closest("a");
  if (!a || a.origin !== location.origin || e.ctrlKey || e.metaKey || e.shiftKey) return;
  if (!routes.some(([re]) => re.test(a.pathname))) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener("popstate", show);

async function watchSource() {
  try {
    const h = await api("/health");
    interval = Math.max(2, h.evaluation_interval_seconds || 15) * 1000;
    const s = document.getElementById("source");
    s.textContent = h.source_up ? "source up" : "source down";
    s.className = "pill " + (h.source_up ? "ok" : "bad");
  } catch { /* the page shows the error */ }
}
await watchSource();
setInterval(watchSource, 30000);
show();
