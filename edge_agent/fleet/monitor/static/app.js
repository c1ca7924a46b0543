/* The monitor dashboard: fleet overview, device page, power, drift and rollout pages, from the
   JSON API.
   Data goes into the page as text nodes only (never innerHTML): device ids and reasons come
   from devices, and a device must not be able to inject markup into the operator's browser. */
(function () {
  "use strict";
  const C = window.EdgeCharts;
  const app = document.getElementById("app");
  const REFRESH_MS = 5000;

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v; else el.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined) continue;
      el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return el;
  }
  const badge = s => h("span", { class: "badge s-" + String(s || "unknown").replace(/[^a-z_]/g, "") }, s || "unknown");
  const fmt = C.fmt;
  const ago = t => { if (!t) return "–"; const s = Date.now() / 1000 - t; return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago"; };
  const when = t => t ? new Date(t * 1000).toLocaleString() : "–";
  const card = (n, l, id) => h("div", { class: "card", "data-card": id }, h("div", { class: "n" }, String(n)), h("div", { class: "l" }, l));
  const num = (v, unit, scale) => v === null || v === undefined ? "–" : fmt(v * (scale || 1)) + " " + unit;
  const mj = v => num(v, "mJ", 1000);
  const table = (id, heads, rows, empty) => rows.length
    ? h("table", { id: id }, h("thead", {}, h("tr", {}, heads.map(t => h("th", {}, t)))), h("tbody", {}, rows))
    : h("p", { class: "empty", id: id + "-empty" }, empty);
  const deviceLink = id => h("a", { href: "/devices/" + encodeURIComponent(id) }, id);
  async function api(path) {
    const r = await fetch(path, { cache: "no-store" });
    if (!r.ok) throw new Error((await r.json()).error || r.statusText);
    return r.json();
  }
  function alertList(alerts) {
    if (!alerts.length) return h("p", { class: "empty" }, "No alerts.");
    return h("div", { id: "alerts" }, alerts.map(a =>
      h("div", { class: "alert " + (a.state === "resolved" ? "resolved" : a.severity), "data-rule": a.rule },
        badge(a.state === "resolved" ? "ok" : a.severity), " ", a.message, " ",
        h("span", { class: "muted" }, "(" + ago(a.state === "resolved" ? a.resolved : a.started) + ")"))));
  }

  /* Messages ingest quarantined (not decodable, or refused by the database): newest first. */
  function deadLetters(dl) {
    const rows = dl.dead_letters.slice(0, 20).map(d => h("tr", { "data-reason": d.reason },
      h("td", { class: "muted" }, ago(d.time)), h("td", {}, d.device_id ? deviceLink(d.device_id) : "–"),
      h("td", {}, d.reason), h("td", {}, d.size + " B"), h("td", {}, d.detail || "–"),
      h("td", { class: "muted" }, d.preview || "")));
    return [h("h2", {}, "Dead letters (" + dl.total + ")"),
      table("dead-letters", ["Received", "Device", "Reason", "Size", "Error", "Preview"], rows, "No message was quarantined.")];
  }

  async function fleetPage() {
    const [fleet, alerts, dl] = await Promise.all([api("/api/fleet"), api("/api/alerts"), api("/api/dead-letters")]);
    const n = fleet.counts;
    const rows = fleet.devices.map(d => h("tr", { "data-device": d.device_id },
      h("td", {}, h("a", { href: "/devices/" + encodeURIComponent(d.device_id) }, d.device_id)),
      h("td", {}, badge(d.state)),
      h("td", {}, d.device_class || "–"),
      h("td", {}, d.agent_version || "–"),
      h("td", { class: "models" }, d.models.length ? d.models.map(m =>
        h("div", {}, m.name + " v" + m.version + " ", h("span", { class: "muted" }, "(" + m.delegate + (m.degraded ? ", degraded" : "") + ")"))) : "–"),
      h("td", {}, d.battery_pct === null ? "–" : fmt(d.battery_pct) + " %"),
      h("td", {}, num(d.power_w, "W")),
      h("td", {}, mj(d.energy_j)),
      h("td", { class: "mode" }, d.power_mode ? badge(d.power_mode) : "–"),
      h("td", {}, d.max_temp_c === null ? "–" : fmt(d.max_temp_c) + " °C"),
      h("td", {}, d.alerts ? h("span", { class: "badge s-warning" }, String(d.alerts)) : "0"),
      h("td", { class: "muted" }, ago(d.last_seen))));
    const versions = Object.entries(fleet.versions).map(([model, vs]) =>
      h("div", { "data-model": model }, h("b", {}, model + ": "),
        Object.entries(vs).map(([v, c]) => "v" + v + " on " + c + " device" + (c === 1 ? "" : "s")).join(", ")));
    return [
      h("h1", {}, "Fleet"),
      h("div", { class: "cards" }, card(n.devices || 0, "devices", "devices"), card(n.online || 0, "online", "online"),
        card(n.degraded || 0, "degraded", "degraded"), card(n.offline || 0, "offline", "offline"),
        card(fleet.saving || 0, "power saving", "saving"), card(fleet.alerts_firing, "alerts firing", "alerts")),
      h("h2", {}, "Model versions"), versions.length ? h("div", { class: "panel" }, versions) : h("p", { class: "empty" }, "No models reported yet."),
      h("h2", {}, "Devices"),
      fleet.devices.length ? h("table", { id: "devices" },
        h("thead", {}, h("tr", {}, ["Device", "State", "Class", "Agent", "Models", "Battery", "Power", "Energy/inf.", "Mode", "Temp", "Alerts", "Last seen"].map(t => h("th", {}, t)))),
        h("tbody", {}, rows)) : h("p", { class: "empty" }, "No device has reported yet."),
      h("h2", {}, "Alerts"), alertList(alerts.alerts),
      deadLetters(dl),
    ];
  }

  function chartPanel(title, id, draw) {
    const box = h("div", { id: id });
    const panel = h("div", { class: "panel" }, h("h2", {}, title), box);
    requestAnimationFrame(() => draw(box));
    return panel;
  }

  async function devicePage(id) {
    const d = await api("/api/devices/" + encodeURIComponent(id) + "?since_s=3600");
    const dev = d.device;
    const series = key => [{ name: key, points: d.sensors.map(s => [s.time, s[key]]) }];
    const latency = Object.entries(d.latency).map(([m, rows]) => ({ name: m + " p95", points: rows.map(r => [r.time, r.p95]) }));
    const latest = d.drift.latest;
    const features = latest.length ? Object.entries(latest[0].features).sort((a, b) => b[1] - a[1]).slice(0, 16).map(([label, value]) => ({ label, value })) : [];
    const samples = d.samples.map(s => h("tr", {},
      h("td", {}, when(s.time)), h("td", {}, (s.model || "–") + " v" + (s.version || "?")),
      h("td", {}, s.prediction === null ? "–" : String(s.prediction)), h("td", {}, s.confidence === null ? "–" : fmt(s.confidence)),
      h("td", {}, s.latency_ms === null ? "–" : fmt(s.latency_ms) + " ms"), h("td", {}, s.strategy || "–"), h("td", {}, String(s.size) + " B")));
    const events = d.events.map(e => h("tr", {}, h("td", {}, when(e.time)), h("td", {}, e.kind),
      h("td", {}, (e.model || "") + (e.version ? " v" + e.version : "")), h("td", {}, badge(e.state)), h("td", {}, e.reason || "")));
    return [
      h("h1", {}, "Device ", h("span", { id: "device-id" }, dev.device_id), " ", badge(dev.online ? dev.state : "offline")),
      h("div", { class: "cards" }, card(dev.device_class || "–", "class", "class"), card(dev.agent_version || "–", "agent", "agent"),
        card(dev.uptime_s ? Math.round(dev.uptime_s / 60) + " min" : "–", "uptime", "uptime"), card(ago(dev.last_seen), "last seen", "seen")),
      h("div", { class: "panel", id: "models" }, d.models.map(m => h("div", {}, h("b", {}, m.name), " v" + m.version + " on " + m.delegate + (m.degraded ? " (degraded)" : "")))),
      h("h2", {}, "Alerts"), alertList(d.alerts),
      h("div", { class: "grid" },
        chartPanel("Latency p95 (ms)", "chart-latency", el => C.lineChart(el, latency, { unit: "ms", legend: true })),
        chartPanel("Battery (%)", "chart-battery", el => C.lineChart(el, series("battery_pct"), { unit: "%", min: 0, max: 100 })),
        chartPanel("Power (W)", "chart-power", el => C.lineChart(el, series("power_w"), { unit: "W" })),
        chartPanel("Temperature (°C)", "chart-temperature", el => C.lineChart(el, series("max_temp_c"), { unit: "°C" })),
        chartPanel("Energy per inference (mJ)", "chart-energy", el => C.lineChart(el, [{ name: "energy", points: d.sensors.map(s => [s.time, s.energy_j === null ? null : s.energy_j * 1000]) }], { unit: "mJ" })),
        chartPanel("Drift per feature (latest window; ≥ 1 drifting)", "chart-drift", el => C.barChart(el, features, { threshold: 1 })),
        chartPanel("Drift severity over time", "chart-drift-series", el => C.lineChart(el, ["input", "prediction", "quality"].map(s => ({ name: s, points: d.drift.series.map(r => [r.time, r[s + "_severity"]]) })), { legend: true }))),
      h("h2", {}, "Recent samples"),
      samples.length ? h("table", { id: "samples" }, h("thead", {}, h("tr", {}, ["Time", "Model", "Prediction", "Confidence", "Latency", "Strategy", "Size"].map(t => h("th", {}, t)))), h("tbody", {}, samples)) : h("p", { class: "empty" }, "No samples uploaded."),
      h("h2", {}, "Events"),
      events.length ? h("table", { id: "events" }, h("thead", {}, h("tr", {}, ["Time", "Kind", "Model", "State", "Reason"].map(t => h("th", {}, t)))), h("tbody", {}, events)) : h("p", { class: "empty" }, "No events."),
    ];
  }

  async function powerPage() {
    const p = await api("/api/power?since_s=3600");
    const t = p.totals;
    const devices = p.devices.map(d => h("tr", { "data-device": d.device_id },
      h("td", {}, deviceLink(d.device_id)), h("td", {}, d.supply),
      h("td", {}, num(d.battery_pct, "%")), h("td", {}, num(d.power_w, "W")), h("td", {}, mj(d.energy_j)),
      h("td", {}, d.power_mode ? badge(d.power_mode) : "–"), h("td", {}, num(d.max_temp_c, "°C")),
      h("td", {}, d.last_switch ? [badge(d.last_switch.mode), " " + (d.last_switch.reason || ""), " ", h("span", { class: "muted" }, "(" + ago(d.last_switch.time) + ")")] : "–")));
    const transitions = p.transitions.map(e => h("tr", { "data-device": e.device_id, "data-mode": e.state },
      h("td", {}, when(e.time)), h("td", {}, deviceLink(e.device_id)), h("td", {}, badge(e.state)),
      h("td", {}, e.fps === null || e.fps === undefined ? "unpaced" : fmt(e.fps) + " fps"),
      h("td", {}, e.model_variant || "–"), h("td", { class: "reason" }, e.reason || "")));
    return [
      h("h1", {}, "Power"),
      h("div", { class: "cards" }, card(t.battery, "on battery", "battery"), card(t.mains, "on mains", "mains"),
        card(t.saving, "saving now", "saving"), card(num(t.power_w, "W"), "fleet power", "power"),
        card(mj(t.energy_j), "energy per inference (mean)", "energy"), card(num(t.lowest_battery_pct, "%"), "lowest battery", "lowest")),
      h("div", { class: "grid" },
        chartPanel("Battery per device (%)", "chart-fleet-battery", el => C.lineChart(el, p.series.battery.map(s => ({ name: s.device_id, points: s.points })), { unit: "%", min: 0, max: 100 })),
        chartPanel("Fleet power (W, sum of devices)", "chart-fleet-power", el => C.lineChart(el, [{ name: "power", points: p.series.power_w }], { unit: "W" })),
        chartPanel("Energy per inference (mJ, fleet mean)", "chart-fleet-energy", el => C.lineChart(el, [{ name: "energy", points: p.series.energy_j.map(([x, v]) => [x, v * 1000]) }], { unit: "mJ" }))),
      h("h2", {}, "Power-mode transitions"),
      table("power-transitions", ["Time", "Device", "Mode", "Frame rate", "Variant", "Reasons"], transitions, "No power-mode transitions yet."),
      h("h2", {}, "Devices"),
      table("power-devices", ["Device", "Supply", "Battery", "Power", "Energy/inf.", "Mode", "Temp", "Last switch"], devices, "No telemetry yet."),
    ];
  }

  async function driftPage() {
    const r = await api("/api/drift?since_s=3600");
    const models = Object.entries(r.models);
    const sev = v => v === null || v === undefined ? "–" : h("span", { class: v >= 1 ? "over" : "" }, fmt(v));
    const events = r.events.map(e => h("tr", { "data-device": e.device_id },
      h("td", {}, when(e.time)), h("td", {}, deviceLink(e.device_id)), h("td", {}, e.model || "–"),
      h("td", {}, badge(e.state)), h("td", {}, e.reason || "")));
    return [
      h("h1", {}, "Drift"),
      h("div", { class: "cards" }, card(models.length, "models with drift windows", "models"),
        card(r.devices_in_alarm.length, "devices in alarm", "in-alarm"), card(r.events.length, "alarm transitions", "transitions")),
      models.length ? models.map(([model, m]) => h("section", { "data-model": model },
        h("h2", {}, model + " ", h("span", { class: "muted" }, m.devices_in_alarm.length + " of " + m.devices.length + " devices in alarm")),
        table("drift-devices-" + model, ["Device", "Latest window", "Input", "Prediction", "Quality", "Alarm", "Worst feature"],
          m.devices.map(d => h("tr", { "data-device": d.device_id },
            h("td", {}, deviceLink(d.device_id)), h("td", { class: "muted" }, ago(d.time) + ", " + d.samples + " samples"),
            h("td", {}, sev(d.input_severity)), h("td", {}, sev(d.prediction_severity)), h("td", {}, sev(d.quality_severity)),
            h("td", {}, badge(d.in_alarm ? "alarm" : "ok")), h("td", {}, d.worst_feature || "–"))), "No windows."),
        h("div", { class: "grid" },
          chartPanel("Input drift severity per device (≥ 1 drifting)", "chart-drift-" + model, el => C.lineChart(el, m.series.map(s => ({ name: s.device_id, points: s.points })), { legend: true })),
          chartPanel("Worst features across devices (max severity, latest windows)", "chart-features-" + model, el => C.barChart(el, m.features.slice(0, 12).map(f => ({ label: f.feature, value: f.max })), { threshold: 1 }))))) :
        h("p", { class: "empty" }, "No drift windows reported in the last hour."),
      h("h2", {}, "Alarm transitions"),
      table("drift-events", ["Time", "Device", "Model", "Alarm", "Transition"], events, "No drift alarms in the last hour."),
    ];
  }

  function gateCells(g) {
    return [
      h("td", {}, g.error_rate === null ? "–" : fmt(g.error_rate * 100) + " %"),
      h("td", {}, fmt(g.latency_p95_ms)),
      h("td", {}, g.shadow_agreement === null ? "–" : fmt(g.shadow_agreement * 100) + " %"),
      h("td", {}, g.drift_alarm ? badge("alarm") : badge("ok")),
      h("td", {}, g.online + " / " + g.devices)];
  }

  async function rolloutPage() {
    const r = await api("/api/rollouts?window_s=600");
    const models = Object.entries(r.models);
    if (!models.length) return [h("h1", {}, "Rollouts"), h("p", { class: "empty" }, "No rollout events yet.")];
    return [h("h1", {}, "Rollouts"), models.map(([model, m]) => h("section", { "data-model": model },
      h("h2", {}, model),
      h("table", { class: "versions" },
        h("thead", {}, h("tr", {}, ["Version", "Devices per state", "Error rate", "p95 (ms)", "Agreement", "Drift alarm", "Online"].map(t => h("th", {}, t)))),
        h("tbody", {}, Object.entries(m.versions).map(([v, info]) => [
          h("tr", { "data-version": v },
            h("td", {}, "v" + v),
            h("td", {}, Object.entries(info.states).map(([s, c]) => h("span", {}, badge(s), " " + c + " "))),
            ...gateCells(info.gates)),
          // a release of several variants: each judged on its own, as the rollout gates do
          Object.entries(info.variants || {}).map(([name, g]) => h("tr", { "data-variant-of": v, "data-variant": name, class: "variant" },
            h("td", { class: "muted" }, "↳ " + name), h("td", {}, ""), ...gateCells(g)))]))),
      h("table", { class: "rollout-devices" },
        h("thead", {}, h("tr", {}, ["Device", "Version", "State", "Reason", "Evidence", "When"].map(t => h("th", {}, t)))),
        h("tbody", {}, m.devices.map(d => h("tr", { "data-device": d.device_id },
          h("td", {}, h("a", { href: "/devices/" + encodeURIComponent(d.device_id) }, d.device_id)),
          h("td", {}, "v" + d.version), h("td", {}, badge(d.state)), h("td", {}, d.reason || ""),
          h("td", { class: "muted" }, d.evidence ? Object.entries(d.evidence).filter(([, v]) => v !== null).map(([k, v]) => k + " " + (typeof v === "number" ? fmt(v) : v)).join(", ") : "–"),
          h("td", { class: "muted" }, ago(d.time))))))))];
  }

  async function render() {
    const path = location.pathname;
    let page = "fleet", content;
    try {
      if (path.startsWith("/devices/")) { page = "device"; content = await devicePage(decodeURIComponent(path.slice(9))); }
      else if (path === "/rollouts") { page = "rollouts"; content = await rolloutPage(); }
      else if (path === "/power") { page = "power"; content = await powerPage(); }
      else if (path === "/drift") { page = "drift"; content = await driftPage(); }
      else content = await fleetPage();
    } catch (err) {
      content = [h("h1", {}, "Cannot load"), h("p", { class: "alert critical" }, String(err.message || err))];
    }
    app.replaceChildren(...[content].flat(Infinity));
    app.setAttribute("data-page", page);
    app.setAttribute("data-loaded", String(Date.now()));
    document.querySelectorAll("[data-nav]").forEach(a => a.classList.toggle("active", a.dataset.nav === page || (page === "device" && a.dataset.nav === "fleet")));
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }
  render();
  setInterval(render, REFRESH_MS);
})();
