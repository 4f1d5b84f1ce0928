// jetmon console. Every string from the server is put in the page with
// textContent or setAttribute, never as HTML, so no event name or label can
// inject markup. Charts are SVG drawn here.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const main = document.getElementById("main");
  let token = sessionStorage.getItem("jetmon-token") || "";
  let liveCtl = null; // AbortController of the live stream
  let liveHandlers = [];
  let refreshTimer = null;

  // h builds an element: h("a", {href: x}, "text", child...).
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  function s(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  function headers(extra) {
    const hs = Object.assign({ Accept: "application/json" }, extra || {});
    if (token) hs.Authorization = "Bearer " + token;
    return hs;
  }
  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || "GET", headers: headers(opts.body ? { "Content-Type": "application/json" } : {}) };
    if (opts.body) init.body = JSON.stringify(opts.body);
    let r;
    // A GET lost to a network change is asked again (twice at most); a
    // write is not, since the server may have done it.
    for (let tries = init.method === "GET" ? 3 : 1; ; ) {
      try { r = await fetch(path, init); break; } catch (e) { if (--tries <= 0) throw e; await new Promise((res) => setTimeout(res, 300)); }
    }
    if (r.status === 401) { askToken(); throw new Error("the API needs a token"); }
    const v = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(v.error || r.statusText);
    return v;
  }
  function askToken() {
    const f = document.getElementById("tokenform");
    f.hidden = false;
    document.getElementById("token").focus();
  }
  document.getElementById("tokenform").addEventListener("submit", (e) => {
    e.preventDefault();
    token = document.getElementById("token").value;
    sessionStorage.setItem("jetmon-token", token);
    document.getElementById("tokenform").hidden = true;
    route();
  });

  // Theme: light, dark or the system's; kept in localStorage.
  function applyTheme() {
    const t = localStorage.getItem("jetmon-theme");
    if (t) document.documentElement.setAttribute("data-theme", t);
    else document.documentElement.removeAttribute("data-theme");
  }
  document.getElementById("theme").addEventListener("click", () => {
    const dark = getComputedStyle(document.documentElement).getPropertyValue("--bg").trim() === "#0d1117";
    localStorage.setItem("jetmon-theme", dark ? "light" : "dark");
    applyTheme();
  });
  applyTheme();

  // Live: server-sent events read with fetch, so that the token can be sent.
  function startLive(params) {
    stopLive();
    const ctl = new AbortController();
    liveCtl = ctl;
    const badge = document.getElementById("live");
    (async function loop() {
      while (!ctl.signal.aborted) {
        try {
          const r = await fetch("/api/v1/console/live" + (params ? "?" + params : ""), { headers: headers({ Accept: "text/event-stream" }), signal: ctl.signal });
          if (!r.ok || !r.body) throw new Error("live " + r.status);
          badge.textContent = "live"; badge.classList.add("on");
          const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, i); buf = buf.slice(i + 2);
              let ev = "message", data = "";
              for (const line of block.split("\n")) {
                if (line.startsWith("event: ")) ev = line.slice(7);
                else if (line.startsWith("data: ")) data += line.slice(6);
              }
              if (!data) continue;
              let v; try { v = JSON.parse(data); } catch (_) { continue; }
              for (const fn of liveHandlers) fn(ev, v);
            }
          }
        } catch (e) {
          if (ctl.signal.aborted) return;
        }
        badge.textContent = "reconnecting"; badge.classList.remove("on");
        await new Promise((res) => setTimeout(res, 1000));
      }
    })();
  }
  function stopLive() {
    if (liveCtl) liveCtl.abort();
    liveCtl = null;
    liveHandlers = [];
    const badge = document.getElementById("live");
    badge.textContent = "offline"; badge.classList.remove("on");
  }

  const fmt = {
    ms(v) { if (v === undefined || v === null || isNaN(v)) return "–"; return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v >= 10 ? v.toFixed(0) + " ms" : v.toFixed(2) + " ms"; },
    n(v) { return Number(v || 0).toLocaleString("en-US"); },
    rate(v) { return (v || 0).toFixed(1) + "/s"; },
    bytes(v) { const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; while (v >= 1024 && i < 4) { v /= 1024; i++; } return v.toFixed(i ? 1 : 0) + " " + u[i]; },
    time(t) { return new Date(t).toLocaleTimeString(); },
    datetime(t) { return new Date(t).toLocaleString(); },
  };
  const RANGES = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };

  function seriesURL(sr, range) {
    const q = new URLSearchParams({ source: sr.source, type: sr.type, operation: sr.operation, range: range || "1h" });
    return "/console/series?" + q.toString();
  }
  // link is an in-page link; an object as its first kid adds attributes.
  function link(href, ...kids) {
    const attrs = kids.length && kids[0] && !(kids[0] instanceof Node) && typeof kids[0] === "object" && !Array.isArray(kids[0]) ? kids.shift() : {};
    return h("a", { ...attrs, href, onclick: (e) => { if (e.ctrlKey || e.metaKey || e.shiftKey || e.button) return; e.preventDefault(); go(href); } }, ...kids);
  }
  function go(href) { history.pushState(null, "", href); route(); }
  window.addEventListener("popstate", route);

  function show(...kids) { main.replaceChildren(...kids); }
  function failure(e) { return h("p", { class: "err-msg", role: "alert" }, "Error: " + e.message); }

  // ---- overview ----
  async function overview() {
    document.title = "Overview · jetmon";
    const box = h("div");
    show(h("h1", {}, "Overview"), box);
    async function draw() {
      let ov;
      try { ov = await api("/api/v1/console/overview"); } catch (e) { box.replaceChildren(failure(e)); return; }
      const sys = ov.system ? ov.system.status : "unknown";
      const cards = h("div", { class: "cards" },
        h("div", { class: "card" }, h("div", { class: "muted" }, "System"), h("div", { class: "v status-" + sys, id: "system-status" }, sys)),
        h("div", { class: "card" }, h("div", { class: "muted" }, "Firing alerts"), h("div", { class: "v state-firing", id: "firing" }, ov.firing)),
        h("div", { class: "card" }, h("div", { class: "muted" }, "Pending alerts"), h("div", { class: "v" }, ov.pending)),
        ...ov.streams.filter((st) => ["PERFORMANCE", "HEALTH", "VALIDATION", "SYSTEM"].includes(st.stream)).map((st) =>
          h("div", { class: "card" }, h("div", { class: "muted" }, st.stream.toLowerCase() + " messages"), h("div", { class: "v" }, fmt.rate(st.per_second)))));
      const streams = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Stream"), h("th", { class: "num" }, "Messages"), h("th", { class: "num" }, "Rate"), h("th", { class: "num" }, "Size"), h("th", {}, "Consumers (pending / unacked)"))),
        h("tbody", {}, ov.streams.map((st) => h("tr", {}, h("td", {}, st.stream), h("td", { class: "num" }, fmt.n(st.messages)), h("td", { class: "num" }, fmt.rate(st.per_second)), h("td", { class: "num" }, fmt.bytes(st.bytes)),
          h("td", {}, st.consumers.map((c) => c.name + " " + fmt.n(c.pending) + " / " + fmt.n(c.ack_pending)).join(", ") || "–")))));
      box.replaceChildren(cards, h("h2", {}, "Alerts"), alertTable(ov.alerts.filter((a) => a.state !== "resolved")), h("h2", {}, "Streams and consumer lag"), h("div", { class: "wrap" }, streams));
    }
    await draw();
    refreshTimer = setInterval(draw, 5000);
    startLive("source=__none__");
    liveHandlers.push((ev) => { if (ev === "alert" || ev === "health") draw(); });
  }

  function alertTable(alerts) {
    if (!alerts.length) return h("p", { class: "muted" }, "No alerts.");
    return h("div", { class: "wrap" }, h("table", { id: "alerts" }, h("thead", {}, h("tr", {}, h("th", {}, "State"), h("th", {}, "Rule"), h("th", {}, "Labels"), h("th", { class: "num" }, "Value"), h("th", { class: "num" }, "Threshold"), h("th", {}, "Since"))),
      h("tbody", {}, alerts.map((a) => h("tr", {}, h("td", { class: "state-" + a.state }, a.state), h("td", {}, a.rule),
        h("td", {}, Object.entries(a.labels || {}).map(([k, v]) => k + "=" + v).join(", ")), h("td", { class: "num" }, (a.value || 0).toFixed(2)), h("td", { class: "num" }, (a.threshold || 0).toFixed(2)),
        h("td", {}, a.active_at ? fmt.datetime(a.active_at) : "–"))))));
  }

  // ---- performance: the series table ----
  async function performance(params) {
    document.title = "Performance · jetmon";
    const range = RANGES[params.get("range")] ? params.get("range") : "15m";
    let sortKey = params.get("sort") || "source", desc = params.get("desc") === "1";
    const filter = h("input", { type: "search", placeholder: "filter source or operation", "aria-label": "Filter series", value: params.get("q") || "" });
    const rangeSel = h("select", { "aria-label": "Range" }, Object.keys(RANGES).filter((r) => RANGES[r] <= 3600).map((r) => h("option", { value: r, selected: r === range }, r)));
    const status = h("span", { class: "muted" });
    const tableBox = h("div", { class: "wrap" });
    show(h("h1", {}, "Performance"), h("div", { class: "toolbar" }, filter, rangeSel, status), tableBox);
    const rows = new Map(); // key -> {source,type,operation,count,errors,p95,spark:[]}
    function key(x) { return x.source + "\u0000" + x.type + "\u0000" + x.operation; }
    const secs = RANGES[range];
    const step = Math.max(5, Math.round(secs / 30));
    try {
      const res = await api("/api/v1/history/windows?" + new URLSearchParams({ from: "now-" + range, step: step + "s" }));
      for (const sr of res.series) {
        const r = { source: sr.source, type: sr.type, operation: sr.operation, count: 0, errors: 0, p95: NaN, spark: [] };
        for (const p of sr.points) { r.count += p.count; r.errors += p.error_count; r.spark.push(p.p95); }
        if (sr.points.length) r.p95 = sr.points[sr.points.length - 1].p95;
        rows.set(key(r), r);
      }
      status.textContent = res.series.length + " series" + (res.series_omitted ? " (" + res.series_omitted + " more not shown)" : "");
    } catch (e) { tableBox.replaceChildren(failure(e)); return; }
    const cols = [["source", "Source"], ["operation", "Operation"], ["type", "Type"], ["count", "Count", 1], ["errors", "Errors", 1], ["p95", "p95 (last)", 1]];
    function draw() {
      const q = filter.value.toLowerCase();
      const list = [...rows.values()].filter((r) => !q || r.source.toLowerCase().includes(q) || r.operation.toLowerCase().includes(q));
      list.sort((a, b) => { const x = a[sortKey], y = b[sortKey]; const c = typeof x === "number" ? (x || 0) - (y || 0) : String(x).localeCompare(String(y)); return desc ? -c : c; });
      const head = h("tr", {}, cols.map(([k, label, num]) => h("th", { class: num ? "num" : null, "aria-sort": k === sortKey ? (desc ? "descending" : "ascending") : null },
        h("button", { type: "button", onclick: () => { if (sortKey === k) desc = !desc; else { sortKey = k; desc = !!num; } remember(); draw(); } }, label + (k === sortKey ? (desc ? " ▼" : " ▲") : "")))), h("th", {}, "p95 trend"));
      tableBox.replaceChildren(h("table", { id: "series" }, h("thead", {}, head), h("tbody", {}, list.slice(0, 2000).map((r) =>
        h("tr", { "data-key": key(r) }, h("td", {}, r.source), h("td", {}, link(seriesURL(r), r.operation)), h("td", { class: "muted" }, r.type.replace("performance.", "")),
          h("td", { class: "num" }, fmt.n(r.count)), h("td", { class: "num" }, fmt.n(r.errors)), h("td", { class: "num" }, fmt.ms(r.p95)), h("td", {}, spark(r.spark)))))));
    }
    function remember() {
      const q = new URLSearchParams({ range, sort: sortKey }); if (desc) q.set("desc", "1"); if (filter.value) q.set("q", filter.value);
      history.replaceState(null, "", "/console/performance?" + q.toString());
    }
    filter.addEventListener("input", () => { remember(); draw(); });
    rangeSel.addEventListener("change", () => go("/console/performance?range=" + rangeSel.value));
    draw();
    let pending = false;
    startLive("");
    liveHandlers.push((ev, w) => {
      if (ev !== "window") return;
      const k = key(w);
      let r = rows.get(k);
      if (!r) { r = { source: w.source, type: w.type, operation: w.operation, count: 0, errors: 0, p95: NaN, spark: [] }; rows.set(k, r); }
      r.count += w.count; r.errors += w.error_count; r.p95 = w.p95; r.spark.push(w.p95); if (r.spark.length > 60) r.spark.shift();
      if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); }
    });
  }

  function spark(values) {
    const svg = s("svg", { class: "spark", viewBox: "0 0 120 24", role: "img", "aria-label": "p95 trend" });
    const vs = values.filter((v) => !isNaN(v));
    if (vs.length < 2) return svg;
    const mx = Math.max(...vs) || 1;
    const pts = vs.map((v, i) => (i * 120 / (vs.length - 1)).toFixed(1) + "," + (22 - v / mx * 20).toFixed(1));
    svg.append(s("polyline", { points: pts.join(" ") }));
    return svg;
  }

  // ---- one series over a range ----
  async function series(params) {
    const sr = { source: params.get("source") || "", type: params.get("type") || "", operation: params.get("operation") || "" };
    const range = RANGES[params.get("range")] ? params.get("range") : "1h";
    document.title = sr.operation + " · " + sr.source + " · jetmon";
    const rangeNav = h("div", { class: "toolbar", role: "group", "aria-label": "Range" }, Object.keys(RANGES).map((r) =>
      r === range ? h("strong", {}, r) : link(seriesURL(sr, r), r)));
    const box = h("div");
    show(h("h1", {}, sr.operation, h("span", { class: "muted" }, " · " + sr.source + " · " + sr.type)), rangeNav, box);
    const secs = RANGES[range];
    const step = Math.max(5, Math.ceil(secs / 240));
    async function draw() {
      // Absolute times aligned to the step: the same link shows the same
      // buckets, and a reload moves them only by whole steps.
      const to = Math.ceil(Date.now() / (step * 1000)) * step * 1000;
      const q = new URLSearchParams({ source: sr.source, type: sr.type, operation: sr.operation, from: new Date(to - secs * 1000).toISOString(), to: new Date(to).toISOString(), step: step + "s" });
      let res;
      try { res = await api("/api/v1/history/windows?" + q.toString()); } catch (e) { box.replaceChildren(failure(e)); return; }
      const pts = res.series.length ? res.series[0].points : [];
      const from = Date.parse(res.from);
      box.setAttribute("data-query", q.toString());
      let errs = 0, count = 0;
      for (const p of pts) { errs += p.error_count; count += p.count; }
      box.replaceChildren(
        h("div", { class: "cards" },
          h("div", { class: "card" }, h("div", { class: "muted" }, "Count"), h("div", { class: "v", id: "total-count" }, fmt.n(count))),
          h("div", { class: "card" }, h("div", { class: "muted" }, "Errors"), h("div", { class: "v" }, fmt.n(errs))),
          h("div", { class: "card" }, h("div", { class: "muted" }, "Step"), h("div", { class: "v" }, step + " s"))),
        h("h2", {}, "Latency"), h("div", { class: "legend" }, h("span", { class: "p50" }, "— p50"), h("span", { class: "p95" }, "— p95"), h("span", { class: "p99" }, "— p99")),
        lineChart(pts, from, to, step), h("h2", {}, "Count and errors"), barChart(pts, from, to, step),
        ...(pts.length ? [] : [h("p", { class: "muted" }, "No windows in this range.")]),
        h("h2", {}, "Slowest traces"), exemplars(pts));
    }
    await draw();
    let timer = null;
    startLive(new URLSearchParams(sr).toString());
    liveHandlers.push((ev) => { if (ev === "window" && !timer) timer = setTimeout(() => { timer = null; draw(); }, 200); });
  }

  const W = 800, H = 240, PAD = 48;
  function axes(svg, from, to, maxY, yfmt) {
    svg.append(s("line", { class: "axis", x1: PAD, y1: H - 24, x2: W - 8, y2: H - 24 }), s("line", { class: "axis", x1: PAD, y1: 8, x2: PAD, y2: H - 24 }));
    for (let i = 0; i <= 4; i++) {
      const y = H - 24 - i * (H - 32) / 4;
      const t = s("text", { x: PAD - 4, y: y + 4, "text-anchor": "end" }); t.textContent = yfmt(maxY * i / 4); svg.append(t);
    }
    for (let i = 0; i <= 4; i++) {
      const x = PAD + i * (W - PAD - 8) / 4;
      const t = s("text", { x, y: H - 6, "text-anchor": "middle" }); t.textContent = fmt.time(from + (to - from) * i / 4); svg.append(t);
    }
  }
  function lineChart(pts, from, to, step) {
    const svg = s("svg", { class: "chart", id: "latency", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "latency percentiles over time" });
    const maxY = Math.max(1e-9, ...pts.map((p) => p.p99));
    axes(svg, from, to, maxY, fmt.ms);
    const X = (t) => PAD + (t - from) / Math.max(1, to - from) * (W - PAD - 8);
    const Y = (v) => H - 24 - v / maxY * (H - 32);
    for (const k of ["p50", "p95", "p99"]) {
      if (!pts.length) continue;
      svg.append(s("polyline", { class: "line " + k, points: pts.map((p) => X(Date.parse(p.start) + step * 500).toFixed(1) + "," + Y(p[k]).toFixed(1)).join(" ") }));
    }
    for (const p of pts) {
      const c = s("circle", { class: "pt", r: 2, cx: X(Date.parse(p.start) + step * 500).toFixed(1), cy: Y(p.p95).toFixed(1), "data-start": p.start, "data-p95": p.p95, "data-count": p.count });
      const tip = s("title"); tip.textContent = fmt.datetime(p.start) + "  p50 " + fmt.ms(p.p50) + "  p95 " + fmt.ms(p.p95) + "  p99 " + fmt.ms(p.p99) + "  n=" + p.count;
      c.append(tip); svg.append(c);
    }
    return svg;
  }
  function barChart(pts, from, to, step) {
    const svg = s("svg", { class: "chart", id: "counts", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "count and errors over time" });
    const maxY = Math.max(1, ...pts.map((p) => p.count));
    axes(svg, from, to, maxY, (v) => Math.round(v).toString());
    const bw = Math.max(1, step * 1000 / Math.max(1, to - from) * (W - PAD - 8) - 1);
    for (const p of pts) {
      const x = PAD + (Date.parse(p.start) - from) / Math.max(1, to - from) * (W - PAD - 8);
      const hgt = p.count / maxY * (H - 32), eh = p.error_count / maxY * (H - 32);
      svg.append(s("rect", { class: "bar", x: x.toFixed(1), y: (H - 24 - hgt).toFixed(1), width: bw.toFixed(1), height: hgt.toFixed(1) }));
      if (eh > 0) svg.append(s("rect", { class: "err", x: x.toFixed(1), y: (H - 24 - eh).toFixed(1), width: bw.toFixed(1), height: eh.toFixed(1) }));
    }
    return svg;
  }

  // ---- traces: exemplars, one trace, the dependency map ----
  // features says what the server offers beside the console's own API
  // (GET /api/v1/console/features); asked once per page load.
  let featuresP = null;
  function features() {
    if (!featuresP) featuresP = api("/api/v1/console/features").catch((e) => { featuresP = null; throw e; });
    return featuresP;
  }
  function noTraces() {
    return h("p", { class: "muted", id: "no-traces", role: "status" }, "Traces are not served here: this console runs without the trace API (it comes with jetmon up, or jetmon traces serve on its own address). Trace ids are shown, not opened.");
  }
  function traceURL(id) { return "/console/trace?" + new URLSearchParams({ id }).toString(); }
  function traceLink(id) { return link(traceURL(id), { class: "trace-id", "data-trace": id, title: "trace " + id }, id.slice(0, 8)); }
  // exemplars lists, newest first, the slowest traces of each point that
  // names some: every id is a link to its trace page.
  function exemplars(pts) {
    const rows = pts.filter((p) => p.slowest_trace_ids && p.slowest_trace_ids.length).reverse();
    if (!rows.length) return h("p", { class: "muted" }, "No trace ids in this range (events without a trace_id carry none).");
    return h("div", { class: "wrap scroll" }, h("table", { id: "exemplars" }, h("thead", {}, h("tr", {}, h("th", {}, "Window"), h("th", { class: "num" }, "Max"), h("th", {}, "Slowest traces, slowest first"))),
      h("tbody", {}, rows.map((p) => h("tr", { "data-start": p.start }, h("td", {}, fmt.datetime(p.start)), h("td", { class: "num" }, fmt.ms(p.max)),
        h("td", {}, p.slowest_trace_ids.flatMap((id, i) => [i ? " " : null, traceLink(id)])))))));
  }

  async function tracePage(params) {
    const id = (params.get("id") || "").trim().toLowerCase();
    document.title = (id ? "Trace " + id.slice(0, 8) : "Traces") + " · jetmon";
    const input = h("input", { id: "trace-input", "aria-label": "Trace id", placeholder: "trace id, 32 hex digits", value: id, size: 34, spellcheck: "false", autocomplete: "off" });
    const box = h("div", { id: "trace" });
    show(h("h1", {}, "Trace"), h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); go(traceURL(input.value.trim())); } }, input, h("button", { type: "submit" }, "Open")), box);
    let f;
    try { f = await features(); } catch (e) { box.replaceChildren(failure(e)); return; }
    if (!f.traces) { box.replaceChildren(noTraces()); return; }
    if (!id) {
      let res; try { res = await api("/api/v1/traces?limit=30"); } catch (e) { box.replaceChildren(failure(e)); return; }
      box.replaceChildren(h("h2", {}, "Recent traces"), res.traces.length ? h("div", { class: "wrap" }, h("table", { id: "traces" }, h("thead", {}, h("tr", {}, h("th", {}, "Trace"), h("th", {}, "Root"), h("th", {}, "Start"), h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Spans"), h("th", { class: "num" }, "Errors"))),
        h("tbody", {}, res.traces.map((t) => h("tr", {}, h("td", {}, traceLink(t.trace_id)), h("td", {}, t.root_service + " · " + t.root_name), h("td", {}, fmt.datetime(t.start)),
          h("td", { class: "num" }, fmt.ms(t.duration_ms)), h("td", { class: "num" }, t.span_count), h("td", { class: "num" + (t.error_count ? " state-firing" : "") }, t.error_count)))))) : h("p", { class: "muted" }, "No traces stored in the last hour."));
      return;
    }
    if (!/^[0-9a-f]{32}$/.test(id)) { box.replaceChildren(h("p", { class: "err-msg", role: "alert" }, "A trace id is 32 hex digits.")); return; }
    let v; try { v = await api("/api/v1/traces/" + id); } catch (e) { box.replaceChildren(failure(e)); return; }
    const detail = h("div", { id: "span-detail", "aria-live": "polite" }, h("p", { class: "muted" }, "Select a span (click, or Tab then Enter) for its details."));
    box.replaceChildren(
      h("div", { class: "cards" },
        h("div", { class: "card" }, h("div", { class: "muted" }, "Root"), h("div", { class: "v" }, v.root_service + " · " + v.root_name)),
        h("div", { class: "card" }, h("div", { class: "muted" }, "Duration"), h("div", { class: "v" }, fmt.ms(v.duration_ms))),
        h("div", { class: "card" }, h("div", { class: "muted" }, "Spans"), h("div", { class: "v", id: "span-count" }, v.span_count + (v.dropped_spans ? " (" + v.dropped_spans + " dropped)" : ""))),
        h("div", { class: "card" }, h("div", { class: "muted" }, "Errors"), h("div", { class: "v" + (v.error_count ? " state-firing" : "") }, v.error_count)),
        h("div", { class: "card" }, h("div", { class: "muted" }, "Started"), h("div", { class: "v small" }, fmt.datetime(v.start)))),
      h("h2", {}, "Waterfall"), h("div", { class: "legend" }, h("span", {}, "▬ span"), h("span", { class: "crit-key" }, "▬ on the critical path"), h("span", { class: "err-key" }, "▬ error")),
      (v.spans || []).length > MAX_ROWS ? h("p", { class: "muted", id: "rows-cut", role: "status" }, "The first " + fmt.n(MAX_ROWS) + " of " + fmt.n(v.spans.length) + " spans are drawn; the API (/api/v1/traces/" + id + ") has them all.") : "",
      h("div", { class: "wrap" }, waterfall(v, (sp) => detail.replaceChildren(spanDetail(sp)))), detail);
  }
  function spanDetail(sp) {
    const rows = [["Service", sp.service], ["Operation", sp.name], ["Event type", sp.event_type], ["Span id", sp.span_id || "–"], ["Parent span id", sp.parent_span_id || "–"],
      ["Event id", sp.event_id || "–"], ["Start", fmt.datetime(sp.start) + " (+" + fmt.ms(sp.offset_ms) + ")"], ["Duration", fmt.ms(sp.duration_ms)], ["Self time", fmt.ms(sp.self_ms)],
      ["On the critical path", fmt.ms(sp.critical_ms)], ["Status", (sp.status || "–") + (sp.error ? " (error)" : "")], ["Context id", sp.context_id || "–"]];
    if (sp.orphan) rows.push(["Orphan", "its parent span never arrived"]);
    return h("table", { class: "kv" }, h("tbody", {}, rows.map(([k, val]) => h("tr", {}, h("th", {}, k), h("td", {}, val)))));
  }
  // waterfall draws one row per span (the first MAX_ROWS), at its start
  // offset and as long as its duration; the critical path's stretches
  // underline their spans.
  const MAX_ROWS = 2000;
  function waterfall(v, onSelect) {
    const spans = (v.spans || []).slice(0, MAX_ROWS);
    const total = Math.max(1e-6, v.duration_ms, ...spans.map((sp) => sp.offset_ms + sp.duration_ms));
    const LW = 300, BW = W - LW - 60, RH = 22, TOP = 22, HT = TOP + spans.length * RH + 4;
    const X = (ms) => LW + ms / total * BW;
    const svg = s("svg", { class: "chart waterfall", id: "waterfall", viewBox: `0 0 ${W} ${HT}`, role: "list", "aria-label": "spans by start time and duration" });
    for (let i = 0; i <= 4; i++) {
      const x = X(total * i / 4);
      svg.append(s("line", { class: "axis", x1: x.toFixed(1), y1: TOP - 6, x2: x.toFixed(1), y2: HT }));
      const t = s("text", { x: x.toFixed(1), y: 13, "text-anchor": i === 0 ? "start" : "middle" }); t.textContent = fmt.ms(total * i / 4); svg.append(t);
    }
    const crit = new Map();
    for (const seg of v.critical_path || []) if (seg.index >= 0) { if (!crit.has(seg.index)) crit.set(seg.index, []); crit.get(seg.index).push(seg); }
    const short = (str, n) => str.length > n ? str.slice(0, n - 1) + "…" : str;
    spans.forEach((sp, i) => {
      const y = TOP + i * RH, onPath = crit.has(sp.index);
      const what = sp.service + " · " + sp.name;
      const g = s("g", { class: "row" + (sp.error ? " error" : "") + (onPath ? " critical" : ""), tabindex: 0, role: "listitem", "data-index": sp.index, "data-span-id": sp.span_id || "",
        "aria-label": what + ", starts at " + fmt.ms(sp.offset_ms) + ", lasts " + fmt.ms(sp.duration_ms) + (sp.error ? ", error" : "") + (onPath ? ", on the critical path" : "") });
      const tip = s("title"); tip.textContent = what + "  +" + fmt.ms(sp.offset_ms) + "  " + fmt.ms(sp.duration_ms) + (sp.error ? "  error" : "");
      g.append(tip, s("rect", { class: "hit", x: 0, y, width: W, height: RH }));
      const depth = Math.min(sp.depth || 0, 12);
      const svc = s("text", { class: "svc", x: 4 + depth * 8, y: y + 15 }); svc.textContent = short(sp.service, 16);
      const op = s("text", { class: "op", x: 4 + depth * 8 + 118, y: y + 15 }); op.textContent = (sp.error ? "✕ " : "") + short(sp.name, Math.max(8, 24 - depth));
      const x = X(sp.offset_ms), wdt = Math.max(1, sp.duration_ms / total * BW);
      g.append(svc, op, s("rect", { class: sp.error ? "span err" : "span", x: x.toFixed(1), y: y + 4, width: wdt.toFixed(1), height: RH - 10 }));
      for (const seg of crit.get(sp.index) || []) g.append(s("rect", { class: "crit", x: X(seg.offset_ms).toFixed(1), y: y + RH - 5, width: Math.max(1, seg.duration_ms / total * BW).toFixed(1), height: 3 }));
      const d = s("text", { x: (x + wdt + 4).toFixed(1), y: y + 15 }); d.textContent = fmt.ms(sp.duration_ms);
      g.append(d);
      const pick = () => { for (const o of svg.querySelectorAll("g.row.selected")) o.classList.remove("selected"); g.classList.add("selected"); onSelect(sp); };
      g.addEventListener("click", pick);
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
      svg.append(g);
    });
    return svg;
  }

  // sortTable draws rows under cols ([key, label, numeric]) sorted by a
  // header button; row(x) makes one tr.
  function sortTable(id, cols, list, row, sortKey, desc) {
    const box = h("div", { class: "wrap" });
    function draw() {
      const sorted = list.slice().sort((a, b) => { const x = a[sortKey], y = b[sortKey]; const c = typeof x === "number" ? (x || 0) - (y || 0) : String(x).localeCompare(String(y)); return desc ? -c : c; });
      box.replaceChildren(h("table", { id }, h("thead", {}, h("tr", {}, cols.map(([k, label, num]) => h("th", { class: num ? "num" : null, "aria-sort": k === sortKey ? (desc ? "descending" : "ascending") : null },
        k ? h("button", { type: "button", onclick: () => { if (sortKey === k) desc = !desc; else { sortKey = k; desc = !!num; } draw(); } }, label + (k === sortKey ? (desc ? " ▼" : " ▲") : "")) : label)))),
        h("tbody", {}, sorted.map(row))));
    }
    draw();
    return box;
  }

  async function dependencies(params) {
    document.title = "Dependencies · jetmon";
    const range = ["15m", "1h", "6h", "24h"].includes(params.get("range")) ? params.get("range") : "1h";
    const box = h("div");
    show(h("h1", {}, "Dependencies"), h("div", { class: "toolbar", role: "group", "aria-label": "Range" }, ["15m", "1h", "6h", "24h"].map((r) => r === range ? h("strong", {}, r) : link("/console/dependencies?range=" + r, r))), box);
    let f;
    try { f = await features(); } catch (e) { box.replaceChildren(failure(e)); return; }
    if (!f.traces) { box.replaceChildren(noTraces()); return; }
    const to = new Date(), from = new Date(to.getTime() - RANGES[range] * 1000);
    const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() }).toString();
    let deps, bots;
    try { [deps, bots] = await Promise.all([api("/api/v1/dependencies?" + q), api("/api/v1/bottlenecks?limit=20&" + q)]); } catch (e) { box.replaceChildren(failure(e)); return; }
    const edges = deps.edges || [], ops = bots.operations || [];
    const slowest = (ids) => (ids || []).slice(0, 3).flatMap((id, i) => [i ? " " : null, traceLink(id)]);
    box.replaceChildren(
      h("h2", {}, "Map"), edges.length ? h("div", { class: "wrap" }, depMap(edges)) : h("p", { class: "muted" }, "No calls between services in this range (spans with a parent in another service make the map)."),
      h("h2", {}, "Calls"), edges.length ? sortTable("edges", [["caller", "Caller"], ["callee", "Callee"], ["calls_per_sec", "Calls/s", 1], ["error_rate", "Error rate", 1], ["p95_ms", "p95", 1], ["", "Slowest traces"]], edges,
        (e) => h("tr", { "data-edge": e.caller + " → " + e.callee }, h("td", {}, e.caller), h("td", {}, "→ " + e.callee), h("td", { class: "num" }, (e.calls_per_sec || 0).toFixed(2)),
          h("td", { class: "num" + (e.error_rate > 0 ? " state-firing" : "") }, ((e.error_rate || 0) * 100).toFixed(1) + " %"), h("td", { class: "num" }, fmt.ms(e.p95_ms)), h("td", {}, slowest(e.slowest_traces))), "calls_per_sec", true) : "",
      h("h2", {}, "Bottlenecks: time on the critical paths"), ops.length ? sortTable("bottlenecks", [["service", "Service"], ["operation", "Operation"], ["critical_ms", "Critical time", 1], ["share", "Share", 1], ["traces", "Traces", 1], ["", "Slowest traces"]], ops,
        (b) => h("tr", {}, h("td", {}, b.service), h("td", {}, b.operation), h("td", { class: "num" }, fmt.ms(b.critical_ms)), h("td", { class: "num" }, ((b.share || 0) * 100).toFixed(1) + " %"),
          h("td", { class: "num" }, fmt.n(b.traces)), h("td", {}, slowest(b.slowest_traces))), "share", true) : h("p", { class: "muted" }, "No traces in this range."));
  }
  // depMap lays services out in columns by their longest call chain from
  // a caller nobody calls, and draws each edge caller → callee.
  function depMap(edges) {
    const names = [...new Set(edges.flatMap((e) => [e.caller, e.callee]))].sort();
    const col = new Map(names.map((n) => [n, 0]));
    for (let pass = 0; pass < names.length; pass++) { // bounded: a cycle stops growing at the pass limit
      let moved = false;
      for (const e of edges) if (e.caller !== e.callee && col.get(e.callee) < col.get(e.caller) + 1 && col.get(e.caller) + 1 < names.length) { col.set(e.callee, col.get(e.caller) + 1); moved = true; }
      if (!moved) break;
    }
    const cols = Math.max(...col.values()) + 1, byCol = [];
    for (const n of names) (byCol[col.get(n)] = byCol[col.get(n)] || []).push(n);
    const rows = Math.max(...byCol.map((c) => (c || []).length));
    const NW = 150, NH = 28, GX = cols > 1 ? (W - 16 - NW) / (cols - 1) : 0, GY = 48, HT = 16 + rows * GY;
    const pos = new Map();
    byCol.forEach((c, i) => (c || []).forEach((n, j) => pos.set(n, { x: 8 + i * GX, y: 8 + j * GY })));
    const svg = s("svg", { class: "chart depmap", id: "depmap", viewBox: `0 0 ${W} ${HT}`, role: "img", "aria-label": "services and the calls between them" });
    const defs = s("defs"), mk = s("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse", orient: "auto" });
    mk.append(s("path", { d: "M0,0 L8,4 L0,8 z", class: "arrowhead" })); defs.append(mk); svg.append(defs);
    const maxRate = Math.max(1e-9, ...edges.map((e) => e.calls_per_sec || 0));
    for (const e of edges) {
      const a = pos.get(e.caller), b = pos.get(e.callee);
      const x1 = a.x + NW, y1 = a.y + NH / 2, x2 = b.x, y2 = b.y + NH / 2;
      const path = e.caller === e.callee ? `M${a.x + NW - 20},${a.y} c0,-14 30,-14 20,4` : b.x > a.x ? `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}` : `M${a.x + NW / 2},${a.y + NH} C${a.x + NW / 2},${a.y + NH + 30} ${b.x + NW / 2},${b.y + NH + 30} ${b.x + NW / 2},${b.y + NH}`;
      const p = s("path", { class: "edge" + (e.error_rate > 0 ? " failing" : ""), d: path, "stroke-width": (1 + 3 * (e.calls_per_sec || 0) / maxRate).toFixed(1), "marker-end": "url(#arrow)", "data-edge": e.caller + " → " + e.callee });
      const tip = s("title"); tip.textContent = e.caller + " → " + e.callee + ": " + (e.calls_per_sec || 0).toFixed(2) + " calls/s, " + ((e.error_rate || 0) * 100).toFixed(1) + " % errors, p95 " + fmt.ms(e.p95_ms);
      p.append(tip); svg.append(p);
    }
    for (const [n, p] of pos) {
      const g = s("g", { class: "node", "data-service": n });
      const t = s("text", { x: p.x + NW / 2, y: p.y + NH / 2 + 4, "text-anchor": "middle" }); t.textContent = n.length > 20 ? n.slice(0, 19) + "…" : n;
      const tip = s("title"); tip.textContent = n;
      g.append(tip, s("rect", { x: p.x, y: p.y, width: NW, height: NH, rx: 6 }), t);
      svg.append(g);
    }
    return svg;
  }

  // ---- health ----
  async function health(params) {
    document.title = "Health · jetmon";
    const range = RANGES[params.get("range")] ? params.get("range") : "1h";
    const box = h("div");
    show(h("h1", {}, "Health"), h("div", { class: "toolbar" }, Object.keys(RANGES).map((r) => r === range ? h("strong", {}, r) : link("/console/health?range=" + r, r))), box);
    async function draw() {
      let res;
      try { res = await api("/api/v1/history/health?" + new URLSearchParams({ from: "now-" + range })); } catch (e) { box.replaceChildren(failure(e)); return; }
      const from = Date.parse(res.from), to = Date.parse(res.to);
      const byComp = new Map();
      for (const e of res.events) {
        const k = e.component ? e.component + " (" + e.source + ")" : "system (" + e.source + ")";
        if (!byComp.has(k)) byComp.set(k, []);
        byComp.get(k).push(e);
      }
      const rows = [...byComp.entries()].sort((a, b) => a[0].localeCompare(b[0]));
      const table = h("table", { id: "components" }, h("thead", {}, h("tr", {}, h("th", {}, "Component"), h("th", {}, "Now"), h("th", {}, "Over time"))),
        h("tbody", {}, rows.map(([k, evs]) => { const last = evs[evs.length - 1];
          return h("tr", { "data-component": last.component || "system" }, h("td", {}, k), h("td", { class: "status-" + last.status }, last.status), h("td", {}, timeline(evs, from, to))); })));
      box.replaceChildren(rows.length ? h("div", { class: "wrap" }, table) : h("p", { class: "muted" }, "No health events in this range."),
        h("h2", {}, "Recent changes"), h("div", { class: "wrap" }, h("table", {}, h("tbody", {}, res.events.slice(-50).reverse().map((e) =>
          h("tr", {}, h("td", {}, fmt.datetime(e.at)), h("td", {}, e.component || "system"), h("td", { class: "status-" + e.status }, e.status), h("td", { class: "muted" }, e.message || "")))))));
    }
    await draw();
    refreshTimer = setInterval(draw, 30000);
    let timer = null;
    startLive("source=__none__");
    liveHandlers.push((ev) => { if (ev === "health" && !timer) timer = setTimeout(() => { timer = null; draw(); }, 300); });
  }
  function timeline(evs, from, to) {
    const w = 300;
    const svg = s("svg", { class: "spark wide", viewBox: `0 0 ${w} 24`, role: "img", "aria-label": "status over time" });
    for (let i = 0; i < evs.length; i++) {
      const a = Math.max(from, Date.parse(evs[i].at)), b = i + 1 < evs.length ? Date.parse(evs[i + 1].at) : to;
      const x = (a - from) / (to - from) * w, x2 = (b - from) / (to - from) * w;
      const st = ["healthy", "degraded", "failed"].includes(evs[i].status) ? evs[i].status : "unknown";
      svg.append(s("rect", { class: "seg-" + st, x: x.toFixed(1), y: 4, width: Math.max(1, x2 - x).toFixed(1), height: 16 }));
    }
    return svg;
  }

  // ---- alerts ----
  async function alerts() {
    document.title = "Alerts · jetmon";
    const cur = h("div"), sil = h("div"), hist = h("div");
    const matchers = h("textarea", { id: "sil-matchers", rows: 2, cols: 30, "aria-label": "Matchers, one label=value per line", placeholder: "alertname=Slow" });
    const dur = h("select", { id: "sil-duration", "aria-label": "Duration" }, ["1h", "2h", "8h", "24h", "168h"].map((d) => h("option", { value: d }, d)));
    const comment = h("input", { id: "sil-comment", "aria-label": "Comment", placeholder: "why" });
    const msg = h("span", { role: "status" });
    const form = h("form", { class: "toolbar", id: "silence-form", onsubmit: async (e) => {
      e.preventDefault();
      const m = {};
      for (const line of matchers.value.split("\n")) { const i = line.indexOf("="); if (i > 0) m[line.slice(0, i).trim()] = line.slice(i + 1).trim(); }
      try { const v = await api("/api/v1/console/silences", { method: "POST", body: { matchers: m, duration: dur.value, comment: comment.value } }); msg.textContent = "Silence " + v.id + " created."; matchers.value = ""; drawSil(); }
      catch (err) { msg.textContent = err.message; }
    } }, matchers, dur, comment, h("button", { type: "submit" }, "Create silence"), msg);
    show(h("h1", {}, "Alerts"), h("h2", {}, "Firing, pending, recently resolved"), cur, h("h2", {}, "Silences"), form, sil, h("h2", {}, "History (24 h)"), hist);
    async function drawCur() { try { cur.replaceChildren(alertTable(await api("/api/v1/console/alerts"))); } catch (e) { cur.replaceChildren(failure(e)); } }
    async function drawSil() {
      let list; try { list = await api("/api/v1/console/silences"); } catch (e) { sil.replaceChildren(failure(e)); return; }
      const now = Date.now();
      sil.replaceChildren(list.length ? h("div", { class: "wrap" }, h("table", { id: "silences" }, h("thead", {}, h("tr", {}, h("th", {}, "Matchers"), h("th", {}, "Ends"), h("th", {}, "Comment"), h("th", {}, ""))),
        h("tbody", {}, list.map((x) => { const active = Date.parse(x.ends_at) > now;
          return h("tr", { "data-id": x.id }, h("td", {}, Object.entries(x.matchers || {}).map(([k, v]) => k + "=" + v).join(", ")), h("td", {}, (active ? "" : "ended ") + fmt.datetime(x.ends_at)), h("td", {}, x.comment || ""),
            h("td", {}, active ? h("button", { type: "button", class: "danger", onclick: async () => { try { await api("/api/v1/console/silences/" + encodeURIComponent(x.id) + "/expire", { method: "POST" }); drawSil(); } catch (e) { msg.textContent = e.message; } } }, "Expire") : "")); }))))
        : h("p", { class: "muted" }, "No silences."));
    }
    async function drawHist() {
      let res; try { res = await api("/api/v1/history/alerts?from=now-24h&limit=200"); } catch (e) { hist.replaceChildren(failure(e)); return; }
      hist.replaceChildren(res.transitions.length ? h("div", { class: "wrap" }, h("table", { id: "alert-history" }, h("tbody", {}, res.transitions.slice().reverse().map((t) =>
        h("tr", {}, h("td", {}, fmt.datetime(t.at)), h("td", {}, t.alert.rule), h("td", {}, t.from + " → "), h("td", { class: "state-" + t.to }, t.to),
          h("td", { class: "muted" }, Object.entries(t.alert.labels || {}).map(([k, v]) => k + "=" + v).join(", ")))))))
        : h("p", { class: "muted" }, "No transitions in the last 24 h."));
    }
    await Promise.all([drawCur(), drawSil(), drawHist()]);
    startLive("source=__none__");
    liveHandlers.push((ev) => { if (ev === "alert") { drawCur(); drawHist(); } });
  }

  // ---- dead letters ----
  async function deadletters(params) {
    document.title = "Dead letters · jetmon";
    const type = params.get("type") || ">";
    const input = h("input", { "aria-label": "Event type pattern", value: type });
    const box = h("div"), msg = h("span", { role: "status" });
    show(h("h1", {}, "Dead letters"), h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); go("/console/deadletters?" + new URLSearchParams({ type: input.value || ">" })); } }, input, h("button", { type: "submit" }, "Filter"), msg), box);
    async function draw() {
      let list; try { list = await api("/api/v1/console/deadletters?" + new URLSearchParams({ type, limit: "200" })); } catch (e) { box.replaceChildren(failure(e)); return; }
      const reasons = new Map();
      for (const d of list) { const k = d.type + " · " + d.reason; reasons.set(k, (reasons.get(k) || 0) + 1); }
      const act = (d, what) => async () => { try { await api("/api/v1/console/deadletters/" + d.seq + "/" + what, { method: "POST" }); msg.textContent = what + " #" + d.seq + " done"; draw(); } catch (e) { msg.textContent = e.message; } };
      box.replaceChildren(
        h("h2", {}, "By type and reason"), reasons.size ? h("ul", {}, [...reasons.entries()].map(([k, n]) => h("li", {}, k + ": " + n))) : h("p", { class: "muted" }, "No dead letters."),
        list.length ? h("div", { class: "wrap" }, h("table", { id: "deadletters" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Stored"), h("th", {}, "Type"), h("th", {}, "Reason"), h("th", {}, "Payload"), h("th", {}, ""))),
          h("tbody", {}, list.map((d) => h("tr", {}, h("td", {}, d.seq), h("td", {}, fmt.datetime(d.stored)), h("td", {}, d.type), h("td", {}, d.reason), h("td", {}, h("pre", {}, d.data)),
            h("td", {}, h("button", { type: "button", onclick: act(d, "retry") }, "Retry"), " ", h("button", { type: "button", class: "danger", onclick: act(d, "drop") }, "Drop"))))))) : "");
    }
    await draw();
  }

  const views = { "": overview, performance, series, health, alerts, deadletters, trace: tracePage, dependencies };
  async function route() {
    stopLive();
    if (refreshTimer) clearInterval(refreshTimer);
    refreshTimer = null;
    const name = location.pathname.replace(/^\/console\/?/, "").replace(/\/$/, "");
    const view = views[name] || overview;
    for (const a of document.querySelectorAll("nav a")) {
      const n = a.getAttribute("data-nav");
      if ((n === "overview" && name === "") || n === name || (n === "performance" && name === "series") || (n === "dependencies" && name === "trace")) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.body.setAttribute("data-view", name || "overview");
    try { await view(new URLSearchParams(location.search)); } catch (e) { show(failure(e)); }
    document.body.setAttribute("data-ready", "1");
  }
  for (const a of document.querySelectorAll("nav a, a.brand")) {
    a.addEventListener("click", (e) => { if (e.ctrlKey || e.metaKey || e.shiftKey || e.button) return; e.preventDefault(); go(a.getAttribute("href")); });
  }
  // Keyboard: g then o/p/h/a/d/m/t goes to a page.
  let gPressed = false;
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement) return;
    if (e.key === "g") { gPressed = true; setTimeout(() => { gPressed = false; }, 1000); return; }
    if (!gPressed) return;
    gPressed = false;
    const to = { o: "/console/", p: "/console/performance", h: "/console/health", a: "/console/alerts", d: "/console/deadletters", m: "/console/dependencies", t: "/console/trace" }[e.key];
    if (to) go(to);
  });
  // A page kept in the back/forward cache would hold its live stream (and
  // one of the browser's few connections to the server): end it when the
  // page is hidden, and start over if the page comes back.
  window.addEventListener("pagehide", stopLive);
  window.addEventListener("pageshow", (e) => { if (e.persisted) route(); });
  route();
})();
