/* A tiny SVG chart renderer for the monitor dashboard (no dependencies, no network).
   lineChart(el, series, opts): series = [{name, points: [[unixSeconds, value], ...]}].
   barChart(el, items, opts): items = [{label, value}], opts.threshold draws a line.
   Every chart sets data-points (how many values it drew) for tests and scripts. */
(function () {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2f5fd0", "#c2410c", "#15803d", "#9333ea", "#0e7490", "#b91c1c",
                  "#a16207", "#db2777", "#4d7c0f", "#1e40af", "#7c2d12", "#475569"];
  function node(tag, attrs, parent) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    if (parent) parent.appendChild(n);
    return n;
  }
  function text(parent, x, y, s, anchor) {
    const t = node("text", { x: x, y: y, "text-anchor": anchor || "start" }, parent);
    t.textContent = s;
    return t;
  }
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  function clock(t) { return new Date(t * 1000).toLocaleTimeString(); }

  function lineChart(el, series, opts) {
    opts = opts || {};
    el.textContent = "";
    const W = 600, H = 180, L = 44, R = 8, T = 8, B = 22;
    const svg = node("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
                              role: "img", "aria-label": opts.title || "chart" }, el);
    const pts = series.flatMap(s => s.points.filter(p => p[1] !== null && isFinite(p[1])));
    svg.setAttribute("data-points", String(pts.length));
    if (!pts.length) { text(svg, W / 2, H / 2, "no data yet", "middle"); return svg; }
    let x0 = Math.min(...pts.map(p => p[0])), x1 = Math.max(...pts.map(p => p[0]));
    let y0 = Math.min(0, ...pts.map(p => p[1])), y1 = Math.max(...pts.map(p => p[1]));
    if (opts.min !== undefined) y0 = opts.min;
    if (opts.max !== undefined) y1 = Math.max(opts.max, y1);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) y1 = y0 + 1;
    const sx = t => L + (t - x0) / (x1 - x0) * (W - L - R);
    const sy = v => H - B - (v - y0) / (y1 - y0) * (H - T - B);
    for (const v of [y0, (y0 + y1) / 2, y1]) {
      node("line", { x1: L, x2: W - R, y1: sy(v), y2: sy(v), stroke: "#e3e6eb" }, svg);
      text(svg, L - 4, sy(v) + 3, fmt(v) + (opts.unit ? "" : ""), "end");
    }
    text(svg, L, H - 6, clock(x0));
    text(svg, W - R, H - 6, clock(x1), "end");
    if (opts.unit) text(svg, 2, T + 8, opts.unit);
    series.forEach((s, i) => {
      const good = s.points.filter(p => p[1] !== null && isFinite(p[1]));
      if (!good.length) return;
      const color = COLORS[i % COLORS.length];
      const d = good.map((p, j) => (j ? "L" : "M") + sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join("");
      node("path", { d: d, fill: "none", stroke: color, "stroke-width": 1.8,
                     "vector-effect": "non-scaling-stroke", "data-series": s.name }, svg);
      if (good.length === 1) node("circle", { cx: sx(good[0][0]), cy: sy(good[0][1]), r: 3, fill: color }, svg);
    });
    if (series.length > 1 || opts.legend) {
      const legend = document.createElement("div");
      legend.className = "legend";
      series.forEach((s, i) => {
        const span = document.createElement("span");
        const swatch = document.createElement("i");
        swatch.style.background = COLORS[i % COLORS.length];
        span.appendChild(swatch);
        span.appendChild(document.createTextNode(s.name));
        legend.appendChild(span);
      });
      el.appendChild(legend);
    }
    return svg;
  }

  function barChart(el, items, opts) {
    opts = opts || {};
    el.textContent = "";
    const W = 600, rowH = 16, L = 120, R = 50;
    const H = Math.max(items.length * rowH + 10, 40);
    const svg = node("svg", { class: "chart bars", viewBox: `0 0 ${W} ${H}`, role: "img",
                              "aria-label": opts.title || "bars" }, el);
    svg.style.height = H + "px";
    svg.setAttribute("data-points", String(items.length));
    if (!items.length) { text(svg, W / 2, 24, "no data yet", "middle"); return svg; }
    const max = Math.max(opts.threshold || 0, ...items.map(i => i.value)) || 1;
    const sx = v => L + v / max * (W - L - R);
    items.forEach((item, i) => {
      const y = 5 + i * rowH;
      text(svg, L - 6, y + 11, item.label, "end");
      const over = opts.threshold !== undefined && item.value >= opts.threshold;
      node("rect", { x: L, y: y + 2, width: Math.max(sx(item.value) - L, 1), height: rowH - 5,
                     fill: over ? "#c62828" : "#2f5fd0", "data-label": item.label }, svg);
      text(svg, sx(item.value) + 4, y + 11, fmt(item.value));
    });
    if (opts.threshold !== undefined) {
      node("line", { x1: sx(opts.threshold), x2: sx(opts.threshold), y1: 0, y2: H,
                     stroke: "#b35900", "stroke-dasharray": "4 3" }, svg);
    }
    return svg;
  }

  window.EdgeCharts = { lineChart: lineChart, barChart: barChart, fmt: fmt };
})();
