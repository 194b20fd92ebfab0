// The operator console: polls the admin port's JSON (/api/overview once, /api/routes and
// /api/metrics every two seconds), draws the route table and the charts, and runs the
// playground through GrpcWeb (grpcweb.js) against the gRPC port. Plain DOM and <canvas>; all
// text goes in through textContent, never as HTML. The client key lives in a variable of this
// page only: it is never put in the URL, in storage or in a cookie.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 2000;
  let overview = null;
  let grpcBase = "";
  let running = null; // AbortController of the playground call in flight

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  async function getJson(path) {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  // --- routes ------------------------------------------------------------------------------

  function renderRoutes(table) {
    const body = $("routes").tBodies[0];
    const rows = [];
    for (const route of table.routes) {
      let firstOfRoute = true;
      for (const target of route.targets) {
        let firstOfTarget = true;
        for (const endpoint of target.endpoints) {
          const row = el("tr");
          row.dataset.route = route.name;
          row.dataset.provider = target.provider;
          row.dataset.endpoint = endpoint.name;
          row.dataset.state = endpoint.ejected ? "ejected" : endpoint.available ? "ok" : "unavailable";
          const name = el("td", firstOfRoute ? route.name : "");
          if (firstOfRoute) {
            name.className = route.available ? "route ok" : "route bad";
            if (route.aliases.length) name.title = "aliases: " + route.aliases.join(", ");
          }
          row.append(
            name,
            el("td", firstOfTarget ? `${target.provider} / ${target.model}` : ""),
            el("td", endpoint.name),
            el("td", endpoint.weight),
            el("td", endpoint.available ? "yes" : "no", endpoint.available ? "ok" : "bad"),
            el("td", endpoint.breaker.replace("_", "-"), endpoint.breaker === "closed" ? "ok" : "bad"),
          );
          let state = "ok";
          let cls = "ok";
          if (endpoint.ejected) { state = "ejected"; cls = "bad"; }
          else if (endpoint.cooling_secs) { state = `cooling ${Math.ceil(endpoint.cooling_secs)} s`; cls = "warn"; }
          row.append(el("td", state, "state " + cls));
          rows.push(row);
          firstOfRoute = false;
          firstOfTarget = false;
        }
      }
    }
    body.replaceChildren(...rows);
  }

  // --- charts ------------------------------------------------------------------------------

  const COLORS = ["#1f6feb", "#cf222e", "#9a6700"];
  const MIN_AXIS_SAMPLES = 120;

  // Draws `series` (arrays of numbers or null, one per sample) as lines on `canvas`, scaled
  // to the largest value, with that value written in the corner.
  function drawLines(canvas, series) {
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    const pad = 18;
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(document.body);
    ctx.strokeStyle = style.getPropertyValue("--line") || "#ccc";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad, height - pad + 0.5);
    ctx.lineTo(width, height - pad + 0.5);
    ctx.stroke();
    let max = 0;
    for (const line of series) for (const v of line) if (v !== null && v > max) max = v;
    const top = max > 0 ? max * 1.1 : 1;
    ctx.fillStyle = style.getPropertyValue("--muted") || "#666";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText(max > 0 ? `max ${max.toFixed(max < 10 ? 2 : 0)}` : "no data", pad, 11);
    // A fixed time axis of at least two minutes, newest sample at the right edge.
    const len = series[0] ? series[0].length : 0;
    const n = Math.max(len, MIN_AXIS_SAMPLES);
    const x = (i) => pad + ((width - pad) * (n - len + i)) / (n - 1);
    const y = (v) => height - pad - ((height - 2 * pad) * v) / top;
    series.forEach((line, k) => {
      ctx.strokeStyle = ctx.fillStyle = COLORS[k % COLORS.length];
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let drawing = false;
      line.forEach((v, i) => {
        if (v === null) { drawing = false; return; }
        if (drawing) ctx.lineTo(x(i), y(v)); else ctx.moveTo(x(i), y(v));
        drawing = true;
      });
      ctx.stroke();
      // A dot for every value, so a lone sample between gaps still shows.
      line.forEach((v, i) => { if (v) ctx.fillRect(x(i) - 1.5, y(v) - 1.5, 3, 3); });
    });
    // For tests and for the curious: how many samples carry data, and their sum.
    let points = 0;
    let sum = 0;
    for (const line of series) for (const v of line) if (v) { points++; sum += v; }
    canvas.dataset.points = String(points);
    canvas.dataset.sum = sum.toFixed(3);
  }

  function renderMetrics(m) {
    const s = m.samples;
    const minutes = Math.max(2, Math.ceil((s.length * m.interval_secs) / 60));
    $("window").textContent = `${minutes} minutes`;
    drawLines($("chart-rate"), [s.map((p) => p.requests_per_sec), s.map((p) => p.errors_per_sec)]);
    drawLines($("chart-latency"), [s.map((p) => p.latency_p50_ms), s.map((p) => p.latency_p99_ms)]);
    drawLines($("chart-overhead"), [s.map((p) => p.overhead_p50_ms), s.map((p) => p.overhead_p99_ms)]);
    drawLines($("chart-resilience"), [s.map((p) => p.retries), s.map((p) => p.failovers), s.map((p) => p.hedges)]);
    $("totals").textContent =
      `calls since start: ${m.requests_total}, not OK: ${m.errors_total}`;
    const rows = m.resilience.map((r) => {
      const row = el("tr");
      row.dataset.route = r.route;
      row.append(el("td", r.route), el("td", r.provider), el("td", r.retries),
        el("td", r.failovers), el("td", r.hedges));
      return row;
    });
    if (!rows.length) {
      const none = el("td", "no retries, failovers or hedges since start", "muted");
      none.colSpan = 5;
      rows.push(el("tr"));
      rows[0].append(none);
    }
    $("resilience").tBodies[0].replaceChildren(...rows);
  }

  async function poll() {
    try {
      const [routes, metrics] = await Promise.all([getJson("/api/routes"), getJson("/api/metrics")]);
      renderRoutes(routes);
      renderMetrics(metrics);
      setStatus(`updated ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      setStatus(`cannot reach the admin port: ${e.message}`);
    }
  }

  // --- playground --------------------------------------------------------------------------

  const keyInput = $("key");

  function currentKey() {
    return keyInput.value.trim();
  }

  function showError(e) {
    $("answer-error").dataset.reason = (e && e.reason) || "";
    $("answer-error").textContent = e instanceof GrpcWeb.GrpcError
      ? `${e.code}${e.reason ? " (" + e.reason + ")" : ""}: ${e.grpcMessage}`
      : `call failed: ${e.message}`;
  }

  async function loadModels() {
    const select = $("model");
    if (overview.client_keys && !currentKey()) {
      select.replaceChildren(el("option", "enter a client key first"));
      return;
    }
    try {
      const models = await GrpcWeb.listModels(grpcBase, currentKey());
      const options = models.map((m) => {
        const option = el("option", m.available ? m.name : `${m.name} (unavailable)`);
        option.value = m.name;
        return option;
      });
      select.replaceChildren(...options);
      select.dataset.loaded = "true";
      $("answer-error").textContent = "";
    } catch (e) {
      select.replaceChildren();
      showError(e);
    }
  }

  async function send(event) {
    event.preventDefault();
    $("answer-error").textContent = "";
    if (overview.client_keys && !currentKey()) {
      $("answer-error").textContent = "this gateway needs a client key";
      return;
    }
    const model = $("model").value;
    if (!model) {
      $("answer-error").textContent = "no model to call";
      return;
    }
    const answer = $("answer");
    answer.textContent = "";
    answer.dataset.state = "streaming";
    $("answer-meta").textContent = "";
    running = new AbortController();
    $("send").disabled = true;
    $("stop").disabled = false;
    let deltas = 0;
    const started = performance.now();
    try {
      await GrpcWeb.streamChat(grpcBase, currentKey(), model, $("message").value, (ev) => {
        if (ev.kind === "content") {
          deltas++;
          answer.dataset.deltas = String(deltas);
          answer.append(document.createTextNode(ev.text));
        } else if (ev.kind === "usage") {
          $("answer-meta").textContent =
            `${ev.usage.input} tokens in, ${ev.usage.output} out`;
        } else if (ev.kind === "finish") {
          const ms = Math.round(performance.now() - started);
          $("answer-meta").textContent +=
            ` · ${ev.finish.reason} · ${ev.finish.provider} / ${ev.finish.model} · ${ms} ms`;
        }
      }, running.signal);
      answer.dataset.state = "done";
    } catch (e) {
      answer.dataset.state = "failed";
      if (e.name !== "AbortError") showError(e);
    } finally {
      running = null;
      $("send").disabled = false;
      $("stop").disabled = true;
    }
  }

  // --- start -------------------------------------------------------------------------------

  async function start() {
    try {
      overview = await getJson("/api/overview");
    } catch (e) {
      setStatus(`cannot reach the admin port: ${e.message}`);
      return;
    }
    $("version").textContent = `v${overview.version}` +
      (overview.echo_fallback ? " · echo fallback (no provider configured)" : "");
    $("config").textContent = overview.config || "(built-in defaults)";
    const scheme = overview.grpc_tls ? "https:" : "http:";
    grpcBase = `${scheme}//${location.hostname}:${overview.grpc_port}`;
    if (!overview.client_keys) $("key-label").hidden = true;
    keyInput.addEventListener("change", loadModels);
    $("playground").addEventListener("submit", send);
    $("stop").addEventListener("click", () => running && running.abort());
    await Promise.all([poll(), loadModels()]);
    setInterval(poll, POLL_MS);
  }

  start();
})();
