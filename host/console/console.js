// The console's page: polls the host's JSON every two seconds and draws it. Every text that
// came from a plugin or a client is set as text, never parsed as HTML.
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function time(ms) {
  return new Date(ms).toLocaleTimeString();
}

function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function bytes(n) {
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}

function micros(us) {
  return us >= 1000 ? (us / 1000).toFixed(1) + " ms" : us + " µs";
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
  return answer;
}

// ---- the plugin set ----

function drawPlugins(overview) {
  const body = $("plugins").tBodies[0];
  body.replaceChildren(
    ...overview.plugins.map((p) =>
      el("tr", { "data-plugin": p.name },
        el("td", {}, el("strong", {}, p.name), p.shadow ? el("span", { class: "badge warn" }, " shadow") : null),
        el("td", {}, p.handles.map((h) => el("div", {}, el("code", {}, h.command), " ", el("span", { class: "muted" }, h.interface)))),
        el("td", {}, grants(p.grants)),
        el("td", { class: "muted" },
          el("div", {}, "memory " + bytes(p.limits.memory_bytes)),
          el("div", {}, "instances " + p.limits.max_instances),
          p.limits.reuse_instances > 1 ? el("div", {}, "reuse " + p.limits.reuse_instances) : null,
          p.limits.max_concurrent_calls ? el("div", {}, "calls at once " + p.limits.max_concurrent_calls) : null,
          p.stock.most > 0
            ? el("div", { class: "stock", title: "stock_instances: instances built ahead of calls, so that a call does not wait for one to be built" },
                "built ahead: " + p.stock.ready + " of " + p.stock.most + " ready · " +
                p.stock.hits + " calls found one ready, " + p.stock.misses + " built their own")
            : null),
        el("td", {}, el("div", {}, bytes(p.file_bytes)), el("div", { class: "mono muted", title: p.sha256 }, p.sha256.slice(0, 12))),
        el("td", { class: "muted", title: new Date(p.loaded_ms).toISOString() }, ago(p.loaded_ms, overview.now_ms)))));
  if (overview.plugins.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no plugin loaded: drop a .wasm component into the plugin directory")));
  }
  $("failed").replaceChildren(
    ...overview.failed.map((f) =>
      el("div", { class: "failed-load" },
        el("strong", {}, f.file), " did not load (" + ago(f.at_ms, overview.now_ms) + ")",
        f.previous_serving ? " — its previous version still serves" : "",
        el("pre", {}, f.reason))));
}

function grants(g) {
  const items = [];
  if (g.keyvalue) items.push("key-value" + (g.keyvalue_buckets.length ? " + " + g.keyvalue_buckets.join(", ") : ""));
  if (g.http.length) items.push("http " + g.http.join(", ") + (g.http_private ? " (private ok)" : ""));
  if (g.config_keys.length) items.push("config " + g.config_keys.join(", "));
  return items.length ? items.map((i) => el("div", {}, i)) : el("span", { class: "muted" }, "none");
}

// ---- per-command charts ----

function chart(label, points, lines, windowMs, nowMs, format) {
  const width = 200, height = 48;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  let max = 0;
  for (const line of lines) for (const p of points) max = Math.max(max, line.value(p));
  const top = max || 1;
  for (const line of lines) {
    const path = document.createElementNS(SVG, "polyline");
    const coords = points.map((p) => {
      const x = ((p.t_ms - (nowMs - windowMs)) / windowMs) * width;
      const y = height - 2 - (line.value(p) / top) * (height - 6);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    path.setAttribute("points", coords.join(" "));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", line.color);
    path.setAttribute("stroke-width", "1.5");
    svg.append(path);
  }
  // The label: the last minute's sum (rates) or worst bucket (latencies).
  const recent = points.slice(-12);
  const now = lines.map((line) => format(recent.map(line.value), recent.length)).join(" / ");
  return el("div", { class: "chart" }, el("div", { class: "label", title: "last minute" }, label + ": " + now), svg);
}

// Every bucket of the window, empty ones as zeros, so the lines drop to zero when idle.
function filled(buckets, series) {
  const step = series.bucket_seconds * 1000;
  const last = Math.floor(series.now_ms / step) * step;
  const byTime = new Map(buckets.map((b) => [b.t_ms, b]));
  const points = [];
  for (let t = last - series.window_seconds * 1000 + step; t <= last; t += step) {
    points.push(byTime.get(t) || { t_ms: t, count: 0, refused: 0, failed: {}, p50_us: 0, p99_us: 0 });
  }
  return points;
}

const failures = (b) => Object.values(b.failed).reduce((a, n) => a + n, 0);

function drawCommands(overview, series) {
  const names = new Set([...overview.commands.map((c) => c.command), ...Object.keys(series.commands)]);
  const settings = new Map(overview.commands.map((c) => [c.command, c]));
  const perSecond = (values, buckets) => (values.reduce((a, n) => a + n, 0) / (buckets * series.bucket_seconds)).toFixed(1) + "/s";
  const worst = (values) => micros(Math.max(0, ...values));
  const cards = [...names].sort().map((name) => {
    const s = settings.get(name);
    const points = filled(series.commands[name] || [], series);
    const until = overview.captures[name];
    const causes = {};
    for (const p of points) for (const [cause, n] of Object.entries(p.failed)) causes[cause] = (causes[cause] || 0) + n;
    return el("div", { class: "card", "data-command": name },
      el("h3", {}, name),
      s ? el("div", { class: "muted" },
        (s.chain.length ? s.chain.join(" → ") : "no plugin") + (s.shadows.length ? "  (shadow: " + s.shadows.join(", ") + ")" : "") +
        " · " + s.phase + (s.queued ? ", queued" : "") + " · timeout " + s.timeout_ms + " ms · on failure " + s.failure_policy)
        : el("div", { class: "muted" }, "no plugin handles it"),
      el("div", { class: "charts" },
        chart("callbacks", points, [{ value: (p) => p.count, color: "#2563eb" }, { value: (p) => p.refused, color: "#b45309" }], series.window_seconds * 1000, series.now_ms, perSecond),
        chart("failures", points, [{ value: failures, color: "#b91c1c" }], series.window_seconds * 1000, series.now_ms, perSecond),
        chart("p50 / p99", points, [{ value: (p) => p.p50_us, color: "#15803d" }, { value: (p) => p.p99_us, color: "#7c3aed" }], series.window_seconds * 1000, series.now_ms, worst)),
      Object.keys(causes).length ? el("div", { class: "muted" }, "failures by cause: " + Object.entries(causes).map(([c, n]) => c + " " + n).join(", ")) : null,
      !s ? null : el("div", {},
        until
          ? el("span", {}, el("span", { class: "badge warn" }, "capturing bodies"), " until " + time(until) + " ",
              el("button", { onclick: () => capture(name, 0) }, "stop"))
          : el("button", { onclick: () => capture(name, 300), title: "keep the request bodies of this command with the recent callbacks for 5 minutes" }, "capture bodies for 5 min")));
  });
  $("commands").replaceChildren(...cards);
  const select = $("filter-command");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "" }, "all"), ...[...names].sort().map((n) => el("option", { value: n }, n)));
  select.value = chosen;
}

async function capture(command, seconds) {
  try {
    await post("/console/api/capture", { command, seconds });
    refresh();
  } catch (error) {
    alert("capture: " + error.message);
  }
}

// ---- recent callbacks ----

function decision(step) {
  const d = step.decision;
  const kind = d.kind === "go_on" ? "go_on" : d.kind;
  const text = d.kind === "go_on" ? "go on" : d.kind === "refused" ? "refused " + d.err_code : "failed: " + d.cause;
  return el("div", { title: d.err_msg || d.detail || "" },
    el("span", { class: "mono" }, step.plugin), " ", el("span", { class: "badge " + kind }, text),
    step.misread_refusal ? el("span", { class: "badge warn", title: "nextCode 1 with actionCode ≠ 0: OpenIM goes on" }, "misread refusal") : null,
    " ", el("span", { class: "muted" }, micros(step.micros)),
    d.err_msg ? el("div", { class: "muted" }, d.err_msg) : null,
    (step.api_calls || []).length ? el("div", { class: "api-calls" }, "OpenIM: ",
      apiCallsSummary(step),
      ...step.api_calls.map((c) => el("span", { class: "badge " + (c.outcome === "ok" ? "go_on" : "failed"), title: "OpenIM API call" },
        c.operation + (c.outcome === "ok" ? "" : " " + c.outcome)))) : null);
}

// "1,873,412 calls (first 20 shown), 1,873,397 rate_limited": when a turn made more OpenIM calls
// than the host keeps one by one.
function apiCallsSummary(step) {
  const total = step.api_calls_total || 0;
  if (total <= step.api_calls.length) return null;
  const counts = Object.entries(step.api_calls_by_outcome || {})
    .map(([outcome, n]) => n.toLocaleString("en") + " " + outcome);
  return el("span", { class: "muted api-calls-total" },
    total.toLocaleString("en") + " calls (first " + step.api_calls.length + " shown), " + counts.join(", ") + " ");
}

// The outcome cell: the answer's outcome and time; for a queued callback, then what its latest
// delivery came to ("queued → delivered", or the failure, with the attempts so far).
function outcomeCell(c) {
  const answered = [el("span", { class: "badge " + c.class }, c.outcome), el("div", { class: "muted" }, micros(c.micros))];
  if (!c.delivery) return el("td", {}, ...answered);
  const d = c.delivery;
  return el("td", { "data-delivery": d.outcome },
    ...answered,
    el("div", { class: "delivery", title: "the queued event's delivery to its plugins, " + time(d.at_ms) },
      "→ ", el("span", { class: "badge " + d.class }, d.outcome),
      d.attempts > 1 ? el("span", { class: "muted" }, " attempt " + d.attempts) : null,
      el("div", { class: "muted" }, micros(d.micros) + " after it came")));
}

function drawRecent(recent) {
  const rows = recent.callbacks.map((c) => {
    const steps = c.delivery ? c.delivery.steps : c.steps;
    return el("tr", { "data-outcome": c.outcome, "data-command": c.command },
      el("td", { class: "muted", title: new Date(c.at_ms).toISOString() }, time(c.at_ms)),
      el("td", {}, el("code", {}, c.command), c.path ? el("div", { class: "muted mono" }, c.path) : null),
      el("td", { class: "mono" }, c.operation_id || "–"),
      outcomeCell(c),
      el("td", { class: "steps" }, steps.length ? steps.map(decision)
        : el("span", { class: "muted" }, c.outcome === "queued" ? "not delivered yet" : "–")),
      el("td", {},
        el("code", { class: "answer" }, c.answer || (c.outcome === "delivered" || c.steps.length ? "(queued event delivered to its plugins)" : "")),
        c.body ? el("details", { class: "captured" },
          el("summary", {}, "captured body (" + bytes(c.body.bytes) + (c.body.truncated ? ", cut at " + bytes(c.body.text.length) : "") + ")"),
          el("pre", {}, c.body.text)) : null));
  });
  $("recent").tBodies[0].replaceChildren(...rows);
  if (rows.length === 0) {
    $("recent").tBodies[0].append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no callback yet")));
  }
  $("recent-count").textContent = recent.total + " callbacks since start" +
    (recent.omitted ? " (" + recent.omitted + " more not listed: the list is capped at 1 MiB)" : "");
}

// ---- queue, shadows, warnings ----

function drawQueue(overview) {
  const q = overview.queue;
  if (!q) {
    $("queue").replaceChildren(el("p", { class: "muted" }, "no command is queued: after-callbacks run inline"));
    return;
  }
  if (q.error) {
    $("queue").replaceChildren(el("p", { class: "failed-load" }, "the queue does not answer: " + q.error));
    return;
  }
  const letters = q.dead_letters.map((d) =>
    el("tr", {},
      el("td", { class: "mono" }, d.id),
      el("td", {}, el("code", {}, d.command)),
      el("td", { class: "mono" }, d.operation_id),
      el("td", { class: "muted" }, time(d.accepted_ms)),
      el("td", {}, d.cause),
      el("td", {}, el("button", { onclick: () => requeue([d.id]) }, "requeue"))));
  $("queue").replaceChildren(
    el("p", {}, "backend " + q.backend + " · depth ", el("strong", { id: "queue-depth" }, String(q.depth)),
      " · oldest " + (q.oldest_seconds == null ? "–" : q.oldest_seconds.toFixed(1) + " s") +
      " · dead letters " + q.dead_letters.length + " ",
      q.dead_letters.length ? el("button", { onclick: () => requeue(null) }, "requeue all") : null),
    q.dead_letters.length
      ? el("table", { id: "dead-letters" },
          el("thead", {}, el("tr", {}, ["id", "command", "operationID", "accepted", "cause", ""].map((h) => el("th", {}, h)))),
          el("tbody", {}, letters))
      : el("p", { class: "muted" }, "no dead letter"));
}

async function requeue(ids) {
  try {
    const answer = await post("/console/api/requeue", ids ? { ids } : {});
    $("status").textContent = "requeued " + answer.requeued;
    refresh();
  } catch (error) {
    alert("requeue: " + error.message);
  }
}

function drawShadows(overview) {
  const list = overview.disagreements;
  $("shadows").replaceChildren(list.length
    ? el("table", {},
        el("thead", {}, el("tr", {}, ["time", "command", "operationID", "shadow plugin", "answer given", "shadow's answer"].map((h) => el("th", {}, h)))),
        el("tbody", {}, list.map((d) =>
          el("tr", {},
            el("td", { class: "muted" }, time(d.at_ms)),
            el("td", {}, el("code", {}, d.command)),
            el("td", { class: "mono" }, d.operation_id),
            el("td", {}, d.plugin),
            el("td", {}, el("pre", {}, JSON.stringify(d.given, null, 1))),
            el("td", {}, el("pre", {}, JSON.stringify(d.shadow, null, 1)))))))
    : el("p", { class: "muted" }, "no disagreement"));
}

function drawRejected(overview) {
  const list = overview.rejected;
  $("rejected-section").hidden = list.length === 0;
  if (overview.refuse_unauthenticated) {
    $("rejected-note").textContent = "Before-callbacks that fail authentication are refused ([auth] refuse_unauthenticated): OpenIM's users see those operations fail. Other rejections are read by OpenIM as “go on”.";
  }
  $("rejected").querySelector("tbody").replaceChildren(...list.map((r) =>
    el("tr", {},
      el("td", { class: "mono" }, r.source),
      el("td", {}, el("strong", {}, r.reason)),
      el("td", {}, String(r.count)),
      el("td", { class: "muted" }, ago(r.last_ms, overview.now_ms)),
      el("td", {}, r.last_error),
      el("td", { class: "muted" }, r.hint))));
}

function drawWarnings(overview) {
  const list = overview.misread_refusals;
  $("warnings-section").hidden = list.length === 0;
  $("warnings").replaceChildren(...list.map((w) =>
    el("li", {}, el("strong", {}, w.plugin), " on ", el("code", {}, w.command), ": " + w.count + " times, last " + ago(w.last_ms, overview.now_ms))));
}

// ---- the loop ----

async function refresh() {
  const query = new URLSearchParams({ command: $("filter-command").value, outcome: $("filter-outcome").value, limit: "100" });
  try {
    const [overview, series, recent] = await Promise.all([
      getJson("/console/api/overview"),
      getJson("/console/api/series"),
      getJson("/console/api/recent?" + query),
    ]);
    $("set").textContent = "v" + overview.version + " · plugin set " + overview.plugin_set.slice(0, 12) + " since " + time(overview.plugin_set_since_ms);
    drawRejected(overview);
    drawWarnings(overview);
    drawPlugins(overview);
    drawCommands(overview, series);
    drawRecent(recent);
    drawQueue(overview);
    drawShadows(overview);
    $("status").textContent = "updated " + time(Date.now());
  } catch (error) {
    $("status").textContent = "not updated: " + error.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("filter-command").addEventListener("change", refresh);
  $("filter-outcome").addEventListener("change", refresh);
  refresh();
  setInterval(refresh, REFRESH_MS);
});
