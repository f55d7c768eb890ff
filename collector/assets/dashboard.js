// routerstats dashboard: a single page over the collector's JSON API.
//
// Reads /api/fleet (every page), /api/routers/{id}, /api/routers/{id}/interfaces/{name}/series and /api/alerts
// (and creates/expires silences), and on a router's page its fleet actions (/api/actions) and,
// with an admin key, WireGuard peer writes (POST /add-peer, DELETE /peer/{name}), with the API key
// the operator typed, kept in sessionStorage (this tab only) and sent as X-API-Key; never in a
// URL. Every value from the API is put in the page as text (textContent), never as HTML. Charts
// are SVG drawn here. Routes (location.hash): #/ overview, #/router/{id} detail,
// #/router/{id}/port/{port} detail with that port's chart open.
(function () {
  "use strict";

  const KEY_STORE = "routerstats.apiKey";
  const PREFS_STORE = "routerstats.prefs";
  const WINDOWS = ["15m", "1h", "1d", "7d"];
  const REFRESH_CHOICES = [5, 10, 30, 60];
  const WINDOW_LABEL = { "15m": "15 min", "1h": "1 hour", "1d": "1 day", "7d": "7 days" };

  const $ = (sel) => document.querySelector(sel);

  function loadPrefs() {
    try {
      const p = JSON.parse(localStorage.getItem(PREFS_STORE) || "{}");
      return {
        duration: WINDOWS.includes(p.duration) ? p.duration : "1h",
        refreshS: REFRESH_CHOICES.includes(p.refreshS) ? p.refreshS : 30,
      };
    } catch (_) {
      return { duration: "1h", refreshS: 30 };
    }
  }

  function savePrefs() {
    try {
      localStorage.setItem(PREFS_STORE, JSON.stringify({ duration: state.duration, refreshS: state.refreshS }));
    } catch (_) {
      /* private mode: preferences are not kept */
    }
  }

  function readKey() {
    try {
      return sessionStorage.getItem(KEY_STORE);
    } catch (_) {
      return null;
    }
  }

  const prefs = loadPrefs();
  const state = {
    key: readKey(),
    duration: prefs.duration,
    refreshS: prefs.refreshS,
    sort: { key: "name", dir: 1 },
    search: "",
    site: "",
    fleet: null,
    detail: null,
    chart: null,
    chartWindow: null,
    alerts: null,
    routerAlerts: null,
    routerActions: null,
    // Whether the key may write (admin): null until /api/actions answered for a router page.
    canWrite: null,
    timer: null,
    inflight: null,
    lastOk: null,
    sites: "",
  };

  // ------------------------------------------------------------------------------------------
  // Formatting

  // `v` in the largest of `units` (each 1000 times the one before) that keeps it at least 1,
  // rounded to three significant digits past the first unit; "–" for no value.
  function fmtUnits(v, units) {
    if (v == null || !isFinite(v)) return "–";
    let i = 0;
    let x = Math.max(0, Number(v));
    while (x >= 1000 && i < units.length - 1) {
      x /= 1000;
      i++;
    }
    return (i === 0 ? String(Math.round(x)) : x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2)) + " " + units[i];
  }

  function fmtBytes(v) {
    return fmtUnits(v, ["B", "kB", "MB", "GB", "TB", "PB"]);
  }

  function fmtBps(v) {
    return fmtUnits(v, ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"]);
  }

  function fmtKbps(v) {
    return v == null ? "–" : fmtBps(Number(v) * 1000);
  }

  function fmtDuration(s) {
    if (s == null || !isFinite(s)) return "–";
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + sec + "s";
    return sec + "s";
  }

  function fmtAgo(s) {
    if (s == null || !isFinite(s)) return "never";
    if (s < 5) return "just now";
    return fmtDuration(s) + " ago";
  }

  function fmtPercent(v) {
    return v == null ? "–" : Number(v).toFixed(Number(v) >= 10 ? 0 : 1) + " %";
  }

  function pad2(n) {
    return String(n).padStart(2, "0");
  }

  function fmtClock(ms) {
    const d = new Date(ms);
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }

  function fmtStamp(unixS, windowName) {
    const d = new Date(unixS * 1000);
    const hm = pad2(d.getHours()) + ":" + pad2(d.getMinutes());
    if (windowName === "7d" || windowName === "1d") {
      return d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + hm;
    }
    return hm;
  }

  function dash(v) {
    return v == null || v === "" ? "–" : String(v);
  }

  // ------------------------------------------------------------------------------------------
  // DOM helpers: text only, never HTML from data.

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === "class") el.className = v;
        else if (k === "text") el.textContent = v;
        else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const kid of kids.flat()) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v != null) el.setAttribute(k, String(v));
    }
    for (const kid of kids.flat()) {
      if (kid == null) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  function badge(status) {
    return h("span", { class: "badge " + status, text: status });
  }

  function emptyRow(cols, text) {
    return h("tr", null, h("td", { colspan: cols, class: "empty", text }));
  }

  // Keeps keyboard focus on the "same" control across a re-render.
  function focusKey() {
    const a = document.activeElement;
    return a && a.dataset ? a.dataset.focusKey || null : null;
  }

  function restoreFocus(key) {
    if (!key) return;
    const el = document.querySelector('[data-focus-key="' + CSS.escape(key) + '"]');
    if (el) el.focus();
  }

  function card(label, value, sub, extra) {
    return h("div", { class: "card" },
      h("div", { class: "label", text: label }),
      h("div", { class: "value", text: value }),
      sub ? h("div", { class: "sub", text: sub }) : null,
      extra || null);
  }

  function usageBar(percent) {
    if (percent == null) return null;
    const p = Math.max(0, Math.min(100, Number(percent)));
    const span = h("span");
    span.style.width = p + "%";
    return h("div", { class: "bar" + (p >= 95 ? " full" : p >= 80 ? " high" : ""), "aria-hidden": "true" }, span);
  }

  // ------------------------------------------------------------------------------------------
  // API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // GET `path`, or `opts.method` with `opts.body` as JSON. The answer's JSON, or its text with
  // `opts.text`, or `{ body, next }` with `opts.next` (`next`: the `X-Next-Cursor` header of a
  // paged answer, null on the last page).
  async function api(path, opts) {
    const o = opts || {};
    const headers = { "X-API-Key": state.key || "", Accept: "application/json" };
    if (o.body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {
        method: o.method || "GET",
        headers,
        body: o.body === undefined ? undefined : JSON.stringify(o.body),
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw new ApiError(0, "cannot reach the collector (" + e.message + ")");
    }
    if (o.text && res.ok) return res.text();
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (!res.ok) {
      const msg = body && typeof body.error === "string" ? body.error : "HTTP " + res.status;
      throw new ApiError(res.status, msg);
    }
    if (o.next) return { body, next: res.headers.get("X-Next-Cursor") };
    return body;
  }

  // The whole fleet's overview: /api/fleet is paged by router (at most 1000 a page), so the
  // pages are read in turn by their `X-Next-Cursor` and merged: routers by name, totals summed
  // (each page's totals are its own routers').
  async function fleetAll(duration) {
    const base = "/api/fleet?duration=" + encodeURIComponent(duration) + "&limit=1000";
    let merged = null;
    let cursor = null;
    const seen = new Set();
    for (;;) {
      const { body, next } = await api(cursor ? base + "&cursor=" + encodeURIComponent(cursor) : base, { next: true });
      if (!merged) {
        merged = body;
      } else {
        merged.routers = merged.routers.concat(body.routers);
        for (const k of Object.keys(merged.totals)) {
          if (typeof body.totals[k] === "number") merged.totals[k] += body.totals[k];
        }
      }
      if (!next || seen.has(next)) break;
      seen.add(next);
      cursor = next;
    }
    merged.routers.sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
    return merged;
  }

  // ------------------------------------------------------------------------------------------
  // Routing

  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter((p) => p !== "");
    try {
      if (parts[0] === "router" && parts[1]) {
        const id = decodeURIComponent(parts[1]);
        const port = parts[2] === "port" && parts[3] ? decodeURIComponent(parts[3]) : null;
        return { view: "detail", id, port };
      }
    } catch (_) {
      /* a malformed escape: fall back to the overview */
    }
    return { view: "overview" };
  }

  function routerHref(id, port) {
    let href = "#/router/" + encodeURIComponent(id);
    if (port) href += "/port/" + encodeURIComponent(port);
    return href;
  }

  // ------------------------------------------------------------------------------------------
  // Views

  function show(view) {
    $("#login-view").hidden = view !== "login";
    $("#overview-view").hidden = view !== "overview";
    $("#detail-view").hidden = view !== "detail";
    $("#controls").hidden = view === "login";
  }

  function banner(text) {
    const b = $("#banner");
    b.textContent = text || "";
    b.hidden = !text;
  }

  function clearData() {
    state.fleet = null;
    state.detail = null;
    state.chart = null;
    state.lastOk = null;
    state.sites = "";
    for (const sel of ["#totals", "#fleet-head", "#fleet-body", "#detail-cards", "#ssid-groups", "#chart"]) {
      $(sel).replaceChildren();
    }
    state.alerts = null;
    state.routerAlerts = null;
    state.routerActions = null;
    state.canWrite = null;
    forgetPeerConfig();
    $("#wg-add-form").hidden = true;
    $("#wg-msg").textContent = "";
    $("#actions-msg").textContent = "";
    for (const t of ["#iface-table", "#lease-table", "#wg-table", "#ovpn-table", "#src-table", "#chart-table", "#alerts-table", "#silences-table", "#router-alerts-table", "#actions-table"]) {
      $(t + " tbody").replaceChildren();
    }
    $("#site-filter").replaceChildren(h("option", { value: "", text: "All sites" }));
    $("#detail-title").textContent = "";
    $("#detail-facts").textContent = "";
    $("#updated").textContent = "Not loaded yet";
  }

  function showLogin(message) {
    clearTimeout(state.timer);
    state.key = null;
    try {
      sessionStorage.removeItem(KEY_STORE);
    } catch (_) {
      /* nothing stored */
    }
    clearData();
    banner("");
    show("login");
    const err = $("#login-error");
    err.textContent = message || "";
    err.hidden = !message;
    $("#api-key").focus();
  }

  // Overview ----------------------------------------------------------------------------------

  const STATUS_RANK = { online: 0, offline: 1, never: 2, revoked: 3 };
  const COLUMNS = [
    { key: "name", label: "Router", sort: (r) => r.name.toLowerCase() },
    { key: "status", label: "Status", sort: (r) => [STATUS_RANK[r.status] ?? 9, r.last_seen_age_s ?? Infinity] },
    { key: "site", label: "Site", sort: (r) => (r.site == null ? null : r.site.toLowerCase()) },
    { key: "model", label: "Model", cls: "col-model", sort: (r) => (r.model == null ? null : r.model.toLowerCase()) },
    { key: "uptime_s", label: "Uptime", num: true },
    { key: "cpu_percent", label: "CPU", num: true },
    { key: "mem_used_percent", label: "Memory", num: true },
    { key: "disk_used_percent", label: "Disk", num: true },
    { key: "clients", label: "Clients", num: true },
    { key: "wan_rx_bytes", label: "WAN RX", num: true },
    { key: "wan_tx_bytes", label: "WAN TX", num: true },
  ];

  function sortValue(col, r) {
    return col.sort ? col.sort(r) : r[col.key];
  }

  function compare(a, b) {
    // Nulls sort last in both directions (handled by the caller); arrays element by element.
    if (Array.isArray(a)) {
      for (let i = 0; i < a.length; i++) {
        const c = compare(a[i], b[i]);
        if (c !== 0) return c;
      }
      return 0;
    }
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b));
  }

  function visibleRouters() {
    if (!state.fleet) return [];
    const q = state.search.trim().toLowerCase();
    const site = state.site.toLowerCase();
    const col = COLUMNS.find((c) => c.key === state.sort.key) || COLUMNS[0];
    const rows = state.fleet.routers.filter((r) => {
      const rs = (r.site || "").toLowerCase();
      if (site && rs !== site) return false;
      if (q && !r.name.toLowerCase().includes(q) && !rs.includes(q)) return false;
      return true;
    });
    rows.sort((x, y) => {
      const a = sortValue(col, x);
      const b = sortValue(col, y);
      if (a == null && b == null) return x.name.localeCompare(y.name);
      if (a == null) return 1;
      if (b == null) return -1;
      return compare(a, b) * state.sort.dir || x.name.localeCompare(y.name);
    });
    return rows;
  }

  function renderTotals(f) {
    const t = f.totals;
    const offline = t.routers - t.routers_online;
    const w = WINDOW_LABEL[f.duration] || f.duration;
    $("#totals").replaceChildren(
      card("Routers online", t.routers_online + " / " + t.routers, t.routers === 0 ? "no routers enrolled" : offline === 0 ? "all online" : offline + " offline"),
      card("Wireless clients", String(t.clients), "on online routers"),
      card("WAN received", fmtBytes(t.wan_rx_bytes), "last " + w + " · now " + fmtBps(t.wan_rx_bps)),
      card("WAN sent", fmtBytes(t.wan_tx_bytes), "last " + w + " · now " + fmtBps(t.wan_tx_bps)),
      card("Sites", String(f.sites.length), f.sites.slice(0, 4).join(", ") + (f.sites.length > 4 ? ", …" : ""))
    );
  }

  function renderSiteFilter(f) {
    const joined = f.sites.join("\u0000");
    if (joined === state.sites) return;
    state.sites = joined;
    const sel = $("#site-filter");
    sel.replaceChildren(h("option", { value: "", text: "All sites" }), ...f.sites.map((x) => h("option", { value: x, text: x })));
    if (state.site && !f.sites.some((x) => x.toLowerCase() === state.site.toLowerCase())) state.site = "";
    sel.value = f.sites.find((x) => x.toLowerCase() === state.site.toLowerCase()) || "";
  }

  function renderFleetHead() {
    const cells = COLUMNS.map((c) => {
      const sorted = state.sort.key === c.key;
      return h("th", {
        scope: "col",
        class: [c.num ? "num" : null, c.cls || null].filter(Boolean).join(" ") || null,
        "aria-sort": sorted ? (state.sort.dir > 0 ? "ascending" : "descending") : null,
      }, h("button", { type: "button", class: "sort", "data-sort": c.key, "data-focus-key": "sort-" + c.key, onclick: () => sortBy(c.key) }, c.label));
    });
    $("#fleet-head").replaceChildren(...cells);
  }

  function sortBy(key) {
    if (state.sort.key === key) state.sort.dir = -state.sort.dir;
    else state.sort = { key, dir: COLUMNS.find((c) => c.key === key && c.num) ? -1 : 1 };
    renderOverview();
  }

  function wanCell(r, dir) {
    const bytes = dir === "rx" ? r.wan_rx_bytes : r.wan_tx_bytes;
    const rate = dir === "rx" ? r.wan_rx_bps : r.wan_tx_bps;
    const label = dir === "rx" ? "WAN RX" : "WAN TX";
    const td = h("td", { class: "num", "data-label": label });
    if (!r.wan_interface) {
      td.append(h("span", { class: "muted", text: "no WAN", title: "No PPPoE or wan interface reported" }));
      return td;
    }
    td.append(h("button", {
      type: "button",
      class: "linkbtn",
      "data-port": r.wan_interface,
      "data-focus-key": "wan-" + r.id + "-" + dir,
      title: r.wan_interface + " now " + fmtBps(rate) + ": open its chart",
      "aria-label": label + " of " + r.name + " (" + r.wan_interface + "): " + fmtBytes(bytes) + ". Open chart",
      onclick: () => { location.hash = routerHref(r.id, r.wan_interface); },
    }, fmtBytes(bytes)));
    return td;
  }

  function renderOverview() {
    const f = state.fleet;
    if (!f) return;
    const fk = focusKey();
    renderTotals(f);
    renderSiteFilter(f);
    renderFleetHead();
    const rows = visibleRouters();
    const body = rows.map((r) => {
      return h("tr", { class: r.online ? null : "offline", "data-router-id": r.id },
        h("th", { scope: "row" }, h("a", { href: routerHref(r.id), "data-focus-key": "router-" + r.id, text: r.name })),
        h("td", { "data-label": "Status" }, badge(r.status), " ", h("span", { class: "muted", text: r.last_seen_ms == null ? "" : fmtAgo(r.last_seen_age_s) })),
        h("td", { "data-label": "Site", text: dash(r.site) }),
        h("td", { class: "col-model", "data-label": "Model", text: dash(r.model) }),
        h("td", { class: "num", "data-label": "Uptime", text: fmtDuration(r.uptime_s) }),
        h("td", { class: "num", "data-label": "CPU", text: fmtPercent(r.cpu_percent) }),
        h("td", { class: "num", "data-label": "Memory", text: fmtPercent(r.mem_used_percent) }),
        h("td", { class: "num", "data-label": "Disk", text: fmtPercent(r.disk_used_percent) }),
        h("td", { class: "num", "data-label": "Clients", text: String(r.clients) }),
        wanCell(r, "rx"),
        wanCell(r, "tx"));
    });
    $("#fleet-body").replaceChildren(...body);
    const col = COLUMNS.find((c) => c.key === state.sort.key) || COLUMNS[0];
    $("#fleet-caption").textContent = "Routers: " + rows.length + " of " + f.routers.length + " shown, sorted by " + col.label +
      (state.sort.dir > 0 ? " ascending" : " descending") + "; WAN traffic over the last " + (WINDOW_LABEL[f.duration] || f.duration);
    const empty = $("#fleet-empty");
    empty.hidden = rows.length > 0;
    empty.textContent = f.routers.length === 0 ? "No routers have enrolled yet." : "No router matches the search.";
    restoreFocus(fk);
  }

  // Detail ------------------------------------------------------------------------------------

  function signalCell(dbm) {
    if (dbm == null) return h("td", { class: "num", text: "–" });
    const cls = dbm >= -60 ? "good" : dbm >= -70 ? "fair" : "poor";
    return h("td", { class: "num" }, h("span", { class: "signal " + cls, "aria-hidden": "true" }), dbm + " dBm");
  }

  function band(freq) {
    if (freq == null) return "";
    if (freq < 3000) return "2.4 GHz";
    if (freq < 5950) return "5 GHz";
    return "6 GHz";
  }

  function renderDetail() {
    const d = state.detail;
    if (!d) return;
    const fk = focusKey();
    const r = d.router;
    const route = parseRoute();
    $("#crumb-name").textContent = r.name;
    $("#detail-title").textContent = r.name;
    $("#detail-status").replaceChildren(badge(r.status), " ", h("span", { class: "muted", text: r.last_seen_ms == null ? "no report yet" : "last seen " + fmtAgo(r.last_seen_age_s) }));
    const facts = [
      r.site ? "Site " + r.site : "No site",
      r.model,
      r.hostname !== r.name ? "hostname " + r.hostname : null,
      d.facts.release ? "OpenWrt " + d.facts.release + (d.facts.revision ? " (" + d.facts.revision + ")" : "") : null,
      d.facts.kernel ? "kernel " + d.facts.kernel : null,
      d.facts.agent_version ? "agent " + d.facts.agent_version : null,
      r.report_interval_ms != null ? "reports every " + (r.report_interval_ms < 1000 ? r.report_interval_ms + " ms" : fmtDuration(r.report_interval_ms / 1000)) : null,
    ].filter(Boolean);
    $("#detail-facts").textContent = facts.join(" · ");
    const load = d.facts.load ? d.facts.load.map((x) => x.toFixed(2)).join(" ") : null;
    $("#detail-cards").replaceChildren(
      card("Uptime", fmtDuration(r.uptime_s), null),
      card("CPU", fmtPercent(r.cpu_percent), load ? "load " + load : null, usageBar(r.cpu_percent)),
      card("Memory", fmtPercent(r.mem_used_percent), r.mem_total_kb != null ? "of " + fmtBytes(r.mem_total_kb * 1024) : null, usageBar(r.mem_used_percent)),
      card("Disk", fmtPercent(r.disk_used_percent), r.disk_total_bytes != null ? (r.disk_mount || "") + " of " + fmtBytes(r.disk_total_bytes) : null, usageBar(r.disk_used_percent)),
      card("Wireless clients", String(r.clients), null),
      card("WAN " + (WINDOW_LABEL[d.duration] || d.duration), r.wan_interface ? "↓ " + fmtBytes(r.wan_rx_bytes) : "–",
        r.wan_interface ? "↑ " + fmtBytes(r.wan_tx_bytes) + " on " + r.wan_interface : "no WAN interface")
    );

    // Interfaces.
    const w = WINDOW_LABEL[d.duration] || d.duration;
    $("#iface-rx-head").textContent = "RX (" + d.duration + ")";
    $("#iface-tx-head").textContent = "TX (" + d.duration + ")";
    $("#iface-caption").textContent = "Interfaces of the newest report, with traffic over the last " + w;
    const portButton = (i, dir) => {
      const bytes = dir === "rx" ? i.window_rx_bytes : i.window_tx_bytes;
      const open = route.port === i.name;
      return h("button", {
        type: "button",
        class: "linkbtn",
        "data-port": i.name,
        "data-dir": dir,
        "data-focus-key": "port-" + i.name + "-" + dir,
        "aria-pressed": open ? "true" : "false",
        "aria-label": (dir === "rx" ? "RX" : "TX") + " of " + i.name + ": " + fmtBytes(bytes) + ". Open chart",
        onclick: () => { location.hash = routerHref(routeId(), i.name); },
      }, fmtBytes(bytes));
    };
    $("#iface-table tbody").replaceChildren(...(d.interfaces.length ? d.interfaces.map((i) => h("tr", null,
      h("th", { scope: "row" }, i.name, i.wan ? h("span", { class: "wan-tag", text: "WAN" }) : null),
      h("td", { text: i.kind }),
      h("td", { class: "num" }, portButton(i, "rx")),
      h("td", { class: "num" }, portButton(i, "tx")),
      h("td", { class: "num", text: fmtBps(i.rx_bps) }),
      h("td", { class: "num", text: fmtBps(i.tx_bps) }),
      h("td", { class: "num", text: String(i.rx_errs + i.tx_errs) }),
      h("td", { class: "num", text: String(i.rx_drop + i.tx_drop) }))) : [emptyRow(8, "No interfaces reported.")]));

    // Wireless clients by SSID.
    const groups = d.ssids.map((g, gi) => {
      // A Wi-Fi 7 multi-link interface lists each link: "ap-mld0 (5 GHz, ch 36, 160 MHz + 6 GHz, ch 37, 320 MHz)".
      const linkText = (l) => band(l.freq_mhz) + (l.channel != null ? ", ch " + l.channel : "") + (l.width_mhz ? ", " + l.width_mhz + " MHz" : "");
      const ifaces = g.interfaces.map((x) => x.name + ((x.links || []).length
        ? " (" + x.links.filter((l) => l.freq_mhz).map(linkText).join(" + ") + ")"
        : x.freq_mhz ? " (" + band(x.freq_mhz) + (x.channel != null ? ", ch " + x.channel : "") + ")" : "")).join(", ");
      const title = g.ssid != null ? g.ssid : (g.interfaces[0] ? g.interfaces[0].name + " (" + g.interfaces[0].type + ", no SSID)" : "No SSID");
      const caption = title + ": " + g.clients.length + (g.clients.length === 1 ? " client" : " clients") + (ifaces ? " on " + ifaces : "");
      const rows = g.clients.length ? g.clients.map((c) => h("tr", null,
        h("th", { scope: "row", text: c.hostname || "(unknown)" }),
        h("td", { text: dash(c.ip) }),
        h("td", null, h("code", { text: c.mac })),
        h("td", { text: c.interface }),
        signalCell(c.signal_dbm),
        h("td", { class: "num", text: fmtKbps(c.tx_bitrate_kbps) }),
        h("td", { class: "num", text: fmtKbps(c.rx_bitrate_kbps) }),
        h("td", { class: "num", text: fmtBps(c.rx_bps) + " / " + fmtBps(c.tx_bps) }),
        h("td", { class: "num", text: c.airtime_permille == null ? "–" : (c.airtime_permille / 10).toFixed(1) + " %" }),
        h("td", { class: "num", text: fmtDuration(c.connected_s) }))) : [emptyRow(10, "No clients connected.")];
      return h("div", { class: "ssid-group table-wrap" },
        h("table", { class: "data ssid", "data-ssid": g.ssid == null ? "" : g.ssid, id: "ssid-" + gi },
          h("caption", { text: caption }),
          h("thead", null, h("tr", null,
            ["Hostname", "IP address", "MAC", "Interface"].map((x) => h("th", { scope: "col", text: x })),
            ["Signal", "TX rate", "RX rate", "Traffic now (down / up)", "Airtime", "Connected"].map((x) => h("th", { scope: "col", class: "num", text: x })))),
          h("tbody", null, rows)));
    });
    $("#ssid-groups").replaceChildren(...(groups.length ? groups : [h("p", { class: "empty", text: "No wireless interfaces reported." })]));

    // Leases.
    $("#lease-caption").textContent = d.leases.length + " DHCP leases";
    $("#lease-table tbody").replaceChildren(...(d.leases.length ? d.leases.map((l) => h("tr", null,
      h("th", { scope: "row", text: l.hostname || "(no hostname)" }),
      h("td", { text: l.ip }),
      h("td", null, l.mac ? h("code", { text: l.mac }) : h("span", { class: "muted", text: l.client_id ? "DUID" : "–", title: l.client_id || null })),
      h("td", { text: l.expires_in_s == null ? "never (static)" : l.expires_in_s < 0 ? "expired" : "in " + fmtDuration(l.expires_in_s) }))) : [emptyRow(4, "No DHCP leases reported.")]));

    // WireGuard.
    const activePeers = d.wireguard.filter((p) => p.status === "active").length;
    $("#wg-caption").textContent = d.wireguard.length + " WireGuard peers, " + activePeers + " with a handshake in the last 3 minutes";
    renderPeerForm(d);
    $("#wg-table tbody").replaceChildren(...(d.wireguard.length ? d.wireguard.map((p) => h("tr", { "data-peer": p.name || null },
      h("th", { scope: "row", text: p.name || p.public_key.slice(0, 10) + "…", title: p.public_key }),
      h("td", { text: p.interface }),
      h("td", null, badge(p.status)),
      h("td", { text: p.handshake_age_s == null ? "never" : fmtAgo(p.handshake_age_s) }),
      h("td", { text: dash(p.endpoint) }),
      h("td", { class: "wrap", text: p.allowed_ips.join(", ") }),
      h("td", { class: "num", text: fmtBytes(p.rx_bytes) }),
      h("td", { class: "num", text: fmtBytes(p.tx_bytes) }),
      peerManageCell(d.router.name, p))) : [emptyRow(9, "No WireGuard peers reported.")]));

    // OpenVPN.
    $("#ovpn-caption").textContent = d.openvpn.length + " OpenVPN clients";
    $("#ovpn-table tbody").replaceChildren(...(d.openvpn.length ? d.openvpn.map((c) => h("tr", null,
      h("th", { scope: "row", text: c.common_name }),
      h("td", { text: c.instance }),
      h("td", { text: c.real_address }),
      h("td", { text: [c.virtual_address, c.virtual_ipv6].filter(Boolean).join(", ") || "–" }),
      h("td", { text: c.connected_s == null ? "–" : fmtDuration(c.connected_s) }),
      h("td", { class: "num", text: fmtBytes(c.rx_bytes) }),
      h("td", { class: "num", text: fmtBytes(c.tx_bytes) }),
      h("td", { text: dash(c.cipher) }))) : [emptyRow(8, "No OpenVPN clients reported.")]));

    // WAN link: addresses and active probes.
    const fmtMs = (v) => v == null ? "–" : v.toFixed(v < 10 ? 2 : 1) + " ms";
    $("#wan-addrs").textContent = (d.wan_addresses || []).length
      ? "WAN addresses: " + d.wan_addresses.map((a) => a.addr + " on " + a.device).join(", ")
      : "No WAN address reported.";
    const probes = d.probes || [];
    $("#probe-caption").textContent = "Active ICMP probes over the last " + w;
    $("#probe-table tbody").replaceChildren(...(probes.length ? probes.map((p) => h("tr", { "data-target": p.target },
      h("th", { scope: "row", text: p.target }),
      h("td", { text: p.role }),
      h("td", { text: p.name }),
      h("td", { class: "num", text: String(p.sent) }),
      h("td", { class: "num", text: p.loss_percent == null ? "–" : p.loss_percent.toFixed(1) + " %" }),
      h("td", { class: "num", text: fmtMs(p.latency_ms) }),
      h("td", { class: "num", text: fmtMs(p.max_latency_ms) }))) : [emptyRow(7, "No probe results in this window.")]));

    // Sources.
    $("#src-table tbody").replaceChildren(...(d.sources.length ? d.sources.map((x) => h("tr", null,
      h("th", { scope: "row", text: x.kind }),
      h("td", { text: x.name }),
      h("td", null, badge(x.state)),
      h("td", { class: "wrap", text: x.detail ? x.detail + (x.skipped ? " (" + x.skipped + " skipped)" : "") : "" }))) : [emptyRow(4, "No source states reported.")]));
    restoreFocus(fk);
  }

  function routeId() {
    const r = parseRoute();
    return r.view === "detail" ? r.id : "";
  }

  // Chart -------------------------------------------------------------------------------------

  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * p >= v) return m * p;
    }
    return 10 * p;
  }

  // A series point: bytes and rates are null where nothing was measured (a gap, never 0).
  function present(p) {
    return p.rx_bps != null || p.tx_bps != null;
  }

  function tipText(p, windowName) {
    const when = fmtStamp(p.timestamp, windowName);
    if (!present(p)) return when + " · no data";
    return when + " · RX " + fmtBps(p.rx_bps) + " (" + fmtBytes(p.rx_bytes) + ") · TX " + fmtBps(p.tx_bps) + " (" + fmtBytes(p.tx_bytes) + ")";
  }

  // The interval whose tip is shown (kept across redraws of the same series), -1 for none.
  let chartHover = -1;
  let chartDrawn = "";

  function drawChart(series) {
    const pts = series.points || [];
    const drawn = series.router_id + "/" + series.interface + "/" + series.duration;
    if (drawn !== chartDrawn) chartHover = -1;
    chartDrawn = drawn;
    const n = pts.length;
    const known = pts.filter(present);
    // Drawn at the container's width so labels keep their size on a phone.
    const W = Math.round(Math.max(300, Math.min(1600, $("#chart").clientWidth || 960)));
    const H = W < 600 ? 240 : 320;
    const m = { l: 78, r: 18, t: 16, b: 40 };
    const pw = W - m.l - m.r;
    const ph = H - m.t - m.b;
    const max = niceCeil(Math.max(0, ...known.map((p) => Math.max(p.rx_bps || 0, p.tx_bps || 0))));
    const x = (i) => m.l + (n > 1 ? (i * pw) / (n - 1) : pw / 2);
    const y = (v) => m.t + ph - (Math.max(0, v) / max) * ph;
    const step = n > 1 ? pw / (n - 1) : pw;
    const title = series.interface + " on " + series.router + ": average traffic per " + fmtDuration(series.interval) + " over the last " + (WINDOW_LABEL[series.duration] || series.duration);
    const svg = s("svg", {
      viewBox: "0 0 " + W + " " + H,
      role: "img",
      "aria-labelledby": "chart-svg-title",
      "data-points": n,
      "data-present": known.length,
      id: "traffic-chart",
      tabindex: 0,
    }, s("title", { id: "chart-svg-title" }, title));
    for (let k = 0; k <= 4; k++) {
      const v = (max * k) / 4;
      svg.append(
        s("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }),
        s("text", { class: "axis-label", x: m.l - 8, y: y(v) + 4, "text-anchor": "end" }, fmtBps(v)));
    }
    const ticks = n < 2 ? [0] : W < 600 ? [0, Math.round((n - 1) / 2), n - 1]
      : [0, Math.round((n - 1) / 4), Math.round((n - 1) / 2), Math.round((3 * (n - 1)) / 4), n - 1];
    for (const i of new Set(ticks)) {
      if (!pts[i]) continue;
      svg.append(s("text", { class: "axis-label", x: x(i), y: H - 14, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle" }, fmtStamp(pts[i].timestamp, series.duration)));
    }
    // Intervals without data: a shaded band, and the lines break there.
    pts.forEach((p, i) => {
      if (present(p)) return;
      const x0 = Math.max(m.l, x(i) - step / 2);
      const x1 = Math.min(W - m.r, x(i) + step / 2);
      svg.append(s("rect", { class: "gap", x: x0.toFixed(1), y: m.t, width: Math.max(1, x1 - x0).toFixed(1), height: ph, "data-i": i },
        s("title", null, tipText(p, series.duration))));
    });
    // Runs of consecutive measured intervals.
    const runs = [];
    let run = [];
    pts.forEach((p, i) => {
      if (present(p)) run.push(i);
      else if (run.length) { runs.push(run); run = []; }
    });
    if (run.length) runs.push(run);
    for (const r of runs) {
      const line = (key) => r.map((i) => x(i).toFixed(1) + "," + y(pts[i][key] || 0).toFixed(1)).join(" ");
      if (r.length > 1) {
        svg.append(s("polygon", { class: "area rx", points: x(r[0]).toFixed(1) + "," + y(0) + " " + line("rx_bps") + " " + x(r[r.length - 1]).toFixed(1) + "," + y(0) }));
        for (const key of ["tx", "rx"]) {
          svg.append(s("polyline", { class: "line " + key, points: line(key + "_bps") }));
        }
      }
    }
    for (const key of ["tx", "rx"]) {
      const g = s("g", { class: "points " + key });
      pts.forEach((p, i) => {
        if (!present(p)) return;
        g.append(s("circle", { class: "pt " + key, cx: x(i).toFixed(1), cy: y(p[key + "_bps"] || 0).toFixed(1), r: 3.6, "data-i": i },
          s("title", null, tipText(p, series.duration))));
      });
      svg.append(g);
    }
    // Hover (or arrow keys on the focused chart): a guide line and a tip with time and values.
    const guide = s("line", { class: "guide", x1: 0, x2: 0, y1: m.t, y2: m.t + ph, visibility: "hidden" });
    svg.append(guide);
    const tip = h("div", { id: "chart-tip", class: "chart-tip", role: "status", "aria-live": "polite", hidden: true });
    let current = -1;
    const showTip = (i) => {
      if (i < 0 || i >= n) return;
      current = i;
      const px = x(i);
      guide.setAttribute("x1", px.toFixed(1));
      guide.setAttribute("x2", px.toFixed(1));
      guide.setAttribute("visibility", "visible");
      tip.textContent = tipText(pts[i], series.duration);
      tip.dataset.i = String(i);
      tip.hidden = false;
      const box = svg.getBoundingClientRect();
      const scale = box.width > 0 ? box.width / W : 1;
      const left = Math.max(0, Math.min(box.width - tip.offsetWidth, px * scale - tip.offsetWidth / 2));
      tip.style.left = left + "px";
      chartHover = i;
    };
    const hideTip = () => {
      current = -1;
      chartHover = -1;
      tip.hidden = true;
      guide.setAttribute("visibility", "hidden");
    };
    svg.addEventListener("pointermove", (e) => {
      const box = svg.getBoundingClientRect();
      if (!(box.width > 0) || n === 0) return;
      const vx = ((e.clientX - box.left) / box.width) * W;
      showTip(Math.round(n > 1 ? ((vx - m.l) / pw) * (n - 1) : 0));
    });
    svg.addEventListener("pointerleave", hideTip);
    svg.addEventListener("blur", hideTip);
    svg.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        e.preventDefault();
        const d = e.key === "ArrowRight" ? 1 : -1;
        showTip(current < 0 ? (d > 0 ? 0 : n - 1) : Math.max(0, Math.min(n - 1, current + d)));
      } else if (e.key === "Escape") {
        hideTip();
      }
    });
    $("#chart").replaceChildren(svg, tip);
    // A refresh redraws the chart: keep the tip where it was.
    if (chartHover >= 0 && chartHover < n) showTip(chartHover);
    $("#chart-summary").textContent = known.length + " of " + n + " intervals of " + fmtDuration(series.interval) + " measured · total RX " + fmtBytes(series.rx_bytes) + ", TX " + fmtBytes(series.tx_bytes);
    const cell = (v, f) => (v == null ? "no data" : f(v));
    $("#chart-table tbody").replaceChildren(...pts.map((p) => h("tr", { class: present(p) ? null : "gap-row" },
      h("th", { scope: "row", text: fmtStamp(p.timestamp, series.duration) }),
      h("td", { text: cell(p.rx_bytes, fmtBytes) }),
      h("td", { text: cell(p.tx_bytes, fmtBytes) }),
      h("td", { text: cell(p.rx_bps, fmtBps) }),
      h("td", { text: cell(p.tx_bps, fmtBps) }))));
  }

  function renderChartControls(port) {
    $("#chart-title").textContent = port + " traffic";
    for (const b of document.querySelectorAll("#chart-windows button")) {
      b.setAttribute("aria-pressed", b.dataset.window === state.chartWindow ? "true" : "false");
    }
  }

  // Alerts -------------------------------------------------------------------------------------

  function fmtWhen(ms) {
    if (ms == null) return "–";
    const d = new Date(ms);
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric" }) + " " + pad2(d.getHours()) + ":" + pad2(d.getMinutes());
  }

  function alertName(a) {
    return a.rule + (a.subject ? " (" + a.subject + ")" : "");
  }

  async function silence(a, msgSel) {
    const msg = $(msgSel);
    try {
      await api("/api/alerts/silences", {
        method: "POST",
        body: { router: a.router, rule: a.rule, comment: "silenced from the dashboard", duration: "1h" },
      });
      msg.textContent = "Silenced " + a.rule + " on " + a.router + " for 1 hour.";
      refresh();
    } catch (e) {
      msg.textContent = e.status === 403
        ? "Silencing needs an admin API key; this key is read-only."
        : "Cannot silence: " + e.message + ".";
    }
  }

  async function expireSilence(sil) {
    const msg = $("#alerts-msg");
    try {
      await api("/api/alerts/silences/" + encodeURIComponent(sil.id), { method: "DELETE" });
      msg.textContent = "Silence " + sil.id + " expired.";
      refresh();
    } catch (e) {
      msg.textContent = e.status === 403
        ? "Expiring a silence needs an admin API key; this key is read-only."
        : "Cannot expire the silence: " + e.message + ".";
    }
  }

  function silenceCell(a, msgSel) {
    if (a.state !== "firing") return h("td", { "data-label": "Silence", text: a.silenced ? "silenced" : "–" });
    if (a.silenced) return h("td", { "data-label": "Silence" }, badge("silenced"));
    return h("td", { "data-label": "Silence" }, h("button", {
      type: "button",
      class: "ghost silence",
      "data-alert": a.id,
      "data-focus-key": "silence-" + a.id,
      "aria-label": "Silence " + alertName(a) + " on " + a.router + " for 1 hour",
      text: "Silence 1 h",
      onclick: () => silence(a, msgSel),
    }));
  }

  function renderAlerts() {
    const fk = focusKey();
    const al = state.alerts;
    const body = $("#alerts-table tbody");
    const sbody = $("#silences-table tbody");
    if (!al) return;
    if (al.err) {
      body.replaceChildren(emptyRow(6, "Cannot load the alerts: " + al.err.message));
      sbody.replaceChildren();
      return;
    }
    const firing = al.firing.alerts || [];
    $("#alerts-title").textContent = "Firing alerts (" + al.firing.total + ")";
    body.replaceChildren(...(firing.length ? firing.map((a) => h("tr", { "data-alert": a.id },
      h("td", { "data-label": "Severity" }, badge(a.severity)),
      h("td", { "data-label": "Alert", text: alertName(a) }),
      h("th", { scope: "row", "data-label": "Router" }, h("a", { href: routerHref(a.router_id), text: a.router })),
      h("td", { "data-label": "Summary", text: a.summary }),
      h("td", { "data-label": "Since", text: fmtWhen(a.started_ms) }),
      silenceCell(a, "#alerts-msg"))) : [emptyRow(6, "No alerts firing.")]));
    const sils = al.silences.silences || [];
    sbody.replaceChildren(...(sils.length ? sils.map((x) => h("tr", { "data-silence": x.id },
      h("td", { "data-label": "Matches", text: [x.rule && "rule " + x.rule, x.router && "router " + x.router, x.site && "site " + x.site].filter(Boolean).join(", ") }),
      h("td", { "data-label": "Comment", text: x.comment }),
      h("td", { "data-label": "Until", text: fmtWhen(x.expires_ms) }),
      h("td", { "data-label": "Created by", text: dash(x.created_by) }),
      h("td", { "data-label": "Expire" }, h("button", {
        type: "button",
        class: "ghost expire",
        "data-focus-key": "expire-" + x.id,
        "aria-label": "Expire silence " + x.id,
        text: "Expire",
        onclick: () => expireSilence(x),
      })))) : [emptyRow(5, "No active silences.")]));
    restoreFocus(fk);
  }

  function renderRouterAlerts() {
    const fk = focusKey();
    const ra = state.routerAlerts;
    const body = $("#router-alerts-table tbody");
    if (!ra) {
      body.replaceChildren();
      return;
    }
    if (ra.err) {
      body.replaceChildren(emptyRow(7, "Cannot load the alerts: " + ra.err.message));
      return;
    }
    const list = ra.ok.alerts || [];
    const firing = list.filter((a) => a.state === "firing").length;
    $("#router-alerts-title").textContent = "Alerts (" + firing + " firing)";
    body.replaceChildren(...(list.length ? list.map((a) => h("tr", { "data-alert": a.id, class: a.state },
      h("td", { "data-label": "State" }, badge(a.state)),
      h("td", { "data-label": "Severity" }, badge(a.severity)),
      h("th", { scope: "row", "data-label": "Alert", text: alertName(a) }),
      h("td", { "data-label": "Summary", text: a.summary }),
      h("td", { "data-label": "Started", text: fmtWhen(a.started_ms) }),
      h("td", { "data-label": "Ended", text: fmtWhen(a.ended_ms) }),
      silenceCell(a, "#router-alerts-msg"))) : [emptyRow(7, "No alerts for this router.")]));
    restoreFocus(fk);
  }

  // Fleet actions and WireGuard writes ----------------------------------------------------------

  const READ_ONLY = "Fleet actions and WireGuard changes need an admin API key; this key is read-only (it sees the peers but cannot add or delete them).";
  const PEER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

  function fmtUnix(s) {
    return s == null ? "–" : fmtWhen(s * 1000);
  }

  // "laptop-alice on wg0" for the typed parameters of an action, "" when it has none.
  function actionTarget(a) {
    const p = a.params && typeof a.params === "object" ? Object.values(a.params)[0] : null;
    if (!p || typeof p !== "object") return "";
    return [p.name, p.interface && "on " + p.interface].filter(Boolean).join(" ");
  }

  function renderActions() {
    const fk = focusKey();
    const ac = state.routerActions;
    const body = $("#actions-table tbody");
    const msg = $("#actions-msg");
    if (!ac) {
      body.replaceChildren();
      msg.textContent = "";
      return;
    }
    if (ac.err) {
      msg.textContent = ac.err.status === 403 ? READ_ONLY : "Cannot load the fleet actions: " + ac.err.message + ".";
      body.replaceChildren(emptyRow(6, ac.err.status === 403 ? "Listing fleet actions needs an admin API key." : "Fleet actions not loaded."));
      return;
    }
    const list = ac.ok.actions || [];
    msg.textContent = "";
    $("#router-actions-title").textContent = "Fleet actions (" + list.length + (ac.ok.next_before != null ? "+" : "") + ")";
    body.replaceChildren(...(list.length ? list.map((a) => {
      const target = actionTarget(a);
      const out = a.output || "";
      return h("tr", { "data-action": a.id, "data-kind": a.kind, "data-state": a.state },
        h("th", { scope: "row", "data-label": "Action" }, h("code", { text: a.kind }), target ? " " + target : null),
        h("td", { "data-label": "State" }, badge(a.state)),
        h("td", { "data-label": "Requested by", text: dash(a.requested_by) }),
        h("td", { "data-label": "Created", text: fmtUnix(a.created_at) }),
        h("td", { "data-label": "Finished", text: fmtUnix(a.finished_at) }),
        h("td", { "data-label": "Output", class: "wrap" }, out
          ? h("details", { "data-focus-key": "action-out-" + a.id },
            h("summary", { text: out.split("\n")[0].slice(0, 80) || "output" }),
            h("pre", { class: "action-output", text: out }))
          : h("span", { class: "muted", text: "–" })));
    }) : [emptyRow(6, "No fleet actions for this router.")]));
    restoreFocus(fk);
  }

  // The add-peer form: shown to admin keys, with the router's reported WireGuard interfaces.
  function renderPeerForm(d) {
    const form = $("#wg-add-form");
    form.hidden = state.canWrite !== true;
    const sel = $("#wg-peer-iface");
    const ifaces = [...new Set(d.wireguard.map((p) => p.interface))].sort();
    if (!ifaces.length) ifaces.push("wg0");
    const cur = sel.value;
    if ([...sel.options].map((o) => o.value).join(",") !== ifaces.join(",")) {
      sel.replaceChildren(...ifaces.map((i) => h("option", { value: i, text: i })));
      if (ifaces.includes(cur)) sel.value = cur;
    }
    if (state.canWrite === false) $("#wg-msg").textContent = READ_ONLY;
  }

  function peerManageCell(router, p) {
    if (state.canWrite !== true || !p.name) return h("td", { "data-label": "Manage", text: "–" });
    return h("td", { "data-label": "Manage" }, h("button", {
      type: "button",
      class: "ghost danger delete-peer",
      "data-focus-key": "delete-peer-" + p.interface + "-" + p.name,
      "aria-label": "Delete WireGuard peer " + p.name + " (" + p.interface + ")",
      text: "Delete",
      onclick: () => deletePeer(router, p),
    }));
  }

  async function deletePeer(router, p) {
    const msg = $("#wg-msg");
    if (!window.confirm("Delete WireGuard peer \"" + p.name + "\" from " + router + " (" + p.interface + ")? Its client can no longer connect.")) return;
    msg.textContent = "Deleting " + p.name + " on " + router + "…";
    try {
      const r = await api("/peer/" + encodeURIComponent(p.name) + "?router=" + encodeURIComponent(router) + "&interface=" + encodeURIComponent(p.interface), { method: "DELETE" });
      msg.textContent = r && r.message ? r.message + "." : "Deleting " + p.name + " was sent to the router.";
    } catch (e) {
      msg.textContent = e.status === 403 ? READ_ONLY : "Cannot delete " + p.name + ": " + e.message + ".";
    }
    refresh();
    refreshAfterWrite();
  }

  // Forgets a shown client configuration: nothing of it stays in the page or in this script.
  function forgetPeerConfig() {
    $("#wg-config").textContent = "";
    const img = $("#wg-qr");
    img.removeAttribute("src");
    img.hidden = true;
    $("#wg-new-config").hidden = true;
  }

  function showPeerConfig(conf, svg) {
    $("#wg-config").textContent = conf;
    const img = $("#wg-qr");
    if (svg) {
      // An <img> never runs what an SVG holds; a data: URL is what the page's CSP allows.
      img.src = "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(svg)));
      img.hidden = false;
    }
    $("#wg-new-config").hidden = false;
    $("#wg-config-dismiss").focus();
  }

  function sleep(ms) {
    return new Promise((r) => setTimeout(r, ms));
  }

  // After a write the router's next report (seconds later) shows its effect: refresh a few times
  // at short intervals rather than waiting for the page's own refresh period.
  async function refreshAfterWrite() {
    for (let i = 0; i < 5; i++) {
      await sleep(2000);
      if (!state.key || parseRoute().view !== "detail") return;
      await refresh();
    }
  }

  async function addPeer(e) {
    e.preventDefault();
    const d = state.detail;
    const msg = $("#wg-msg");
    const input = $("#wg-peer-name");
    const name = input.value.trim();
    const iface = $("#wg-peer-iface").value;
    if (!d) return;
    if (!PEER_NAME.test(name)) {
      msg.textContent = "A peer name is 1-32 letters, digits, _ or -, starting with a letter or digit.";
      input.focus();
      return;
    }
    forgetPeerConfig();
    const router = d.router.name;
    const submit = $("#wg-add-submit");
    submit.disabled = true;
    msg.textContent = "Adding " + name + " on " + router + " (" + iface + "), waiting for the router…";
    try {
      const r = await api("/add-peer", { method: "POST", body: { name, router, interface: iface } });
      if (r.action_id != null && r.peer_name == null) {
        msg.textContent = "The router has not answered yet (action " + r.action_id + ", " + r.state + "); see Fleet actions.";
        return;
      }
      input.value = "";
      msg.textContent = r.message + ": " + r.peer_name + " has address " + r.ip_address + ". Fetching its configuration…";
      refresh();
      // The configuration is served once the router's next report lists the peer.
      let conf = null;
      for (let i = 0; i < 30 && conf == null; i++) {
        try {
          const p = await api("/peer/" + encodeURIComponent(r.peer_name));
          conf = p.config;
          if (conf == null) break;
        } catch (err) {
          if (err.status !== 404) throw err;
          await sleep(1000);
        }
      }
      if (conf == null) {
        msg.textContent = r.message + " (address " + r.ip_address + "), but its configuration could not be fetched.";
        return;
      }
      const svg = await api("/peer/" + encodeURIComponent(r.peer_name) + "/qr", { text: true }).catch(() => null);
      showPeerConfig(conf, svg);
      msg.textContent = r.message + ": " + r.peer_name + " has address " + r.ip_address + ".";
    } catch (err) {
      msg.textContent = err.status === 403 ? READ_ONLY : "Cannot add " + name + ": " + err.message + ".";
    } finally {
      submit.disabled = false;
      refresh();
      refreshAfterWrite();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Loading

  async function load() {
    const route = parseRoute();
    const d = state.duration;
    if (route.view === "overview") {
      const [f, al] = await Promise.all([
        fleetAll(d),
        Promise.all([api("/api/alerts?state=firing&limit=200"), api("/api/alerts/silences")])
          .then(([firing, silences]) => ({ firing, silences }), (err) => ({ err })),
      ]);
      if (al.err && al.err.status === 401) throw al.err;
      state.fleet = f;
      state.alerts = al;
      renderOverview();
      renderAlerts();
      return;
    }
    const id = route.id;
    const wantChart = route.port != null;
    if (!state.chartWindow) state.chartWindow = state.duration;
    const [detail, chart] = await Promise.all([
      api("/api/routers/" + encodeURIComponent(id) + "?duration=" + encodeURIComponent(d)),
      wantChart
        ? api("/api/routers/" + encodeURIComponent(id) + "/interfaces/" + encodeURIComponent(route.port) + "/series?duration=" + encodeURIComponent(state.chartWindow))
          .then((b) => ({ ok: b }), (e) => ({ err: e }))
        : Promise.resolve(null),
    ]);
    if (parseRoute().id !== id) return;
    state.detail = detail;
    renderDetail();
    const ra = await api("/api/alerts?limit=20&router=" + encodeURIComponent(detail.router.name))
      .then((ok) => ({ ok }), (err) => ({ err }));
    if (ra.err && ra.err.status === 401) throw ra.err;
    if (parseRoute().id !== id) return;
    state.routerAlerts = ra;
    renderRouterAlerts();
    // The actions of this router; a read key gets 403 here, which also says it cannot write.
    const ac = await api("/api/actions?limit=20&router=" + encodeURIComponent(detail.router.name))
      .then((ok) => ({ ok }), (err) => ({ err }));
    if (ac.err && ac.err.status === 401) throw ac.err;
    if (parseRoute().id !== id) return;
    state.routerActions = ac;
    const could = state.canWrite;
    state.canWrite = ac.ok ? true : ac.err.status === 403 ? false : could;
    if (state.canWrite !== could) renderDetail();
    renderActions();
    const panel = $("#chart-panel");
    if (!wantChart) {
      panel.hidden = true;
      state.chart = null;
      return;
    }
    panel.hidden = false;
    renderChartControls(route.port);
    if (chart && chart.err) {
      if (chart.err.status === 401) throw chart.err;
      state.chart = null;
      $("#chart").replaceChildren(h("p", { class: "error", role: "alert", text: "Cannot load the chart: " + chart.err.message }));
      $("#chart-summary").textContent = "";
      $("#chart-table tbody").replaceChildren();
    } else if (chart) {
      state.chart = chart.ok;
      drawChart(chart.ok);
    }
  }

  let pending = false;
  async function refresh() {
    if (!state.key) return;
    if (state.inflight) {
      pending = true;
      return state.inflight;
    }
    clearTimeout(state.timer);
    state.inflight = (async () => {
      try {
        await load();
        state.lastOk = Date.now();
        banner("");
        const u = $("#updated");
        u.textContent = "Updated " + fmtClock(state.lastOk);
        u.parentElement.classList.remove("stale");
      } catch (e) {
        if (e.status === 401 || e.status === 403) {
          showLogin("Your API key was rejected (" + e.message + "). Sign in again.");
          return;
        }
        const since = state.lastOk ? " Showing data from " + fmtClock(state.lastOk) + "." : "";
        if (e.status === 404 && parseRoute().view === "detail") {
          state.detail = null;
          banner("Not found: " + e.message + ".");
        } else {
          banner("Refresh failed at " + fmtClock(Date.now()) + ": " + e.message + "." + since);
        }
        $("#updated").parentElement.classList.add("stale");
      } finally {
        state.inflight = null;
        schedule();
      }
    })();
    await state.inflight;
    if (pending) {
      pending = false;
      await refresh();
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!state.key) return;
    state.timer = setTimeout(refresh, state.refreshS * 1000);
  }

  let scrolledPort = null;
  let lastView = null;
  function onRoute() {
    if (!state.key) {
      showLogin("");
      return;
    }
    const route = parseRoute();
    const viewKey = route.view + ":" + (route.id || "");
    if (viewKey !== lastView) {
      lastView = viewKey;
      window.scrollTo(0, 0);
    }
    show(route.view);
    if (route.view === "overview") {
      state.chartWindow = null;
      renderOverview();
    } else {
      if (!state.detail || String(state.detail.router.id) !== route.id && state.detail.router.name !== route.id) {
        state.detail = null;
        state.chart = null;
        state.routerAlerts = null;
        state.routerActions = null;
        renderRouterAlerts();
        renderActions();
        forgetPeerConfig();
        $("#wg-msg").textContent = "";
        $("#detail-title").textContent = "Loading " + route.id + "…";
      }
      if (!route.port) {
        $("#chart-panel").hidden = true;
      }
    }
    if (!route.port) scrolledPort = null;
    refresh().then(() => {
      const now = parseRoute();
      const panel = $("#chart-panel");
      if (now.port && now.port === route.port && scrolledPort !== now.port && !panel.hidden) {
        scrolledPort = now.port;
        panel.scrollIntoView({ block: "start" });
      }
    });
  }

  // ------------------------------------------------------------------------------------------
  // Wiring

  function init() {
    $("#duration").value = state.duration;
    $("#refresh").value = String(state.refreshS);

    $("#login-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const input = $("#api-key");
      const key = input.value.trim();
      const err = $("#login-error");
      if (!key) {
        err.textContent = "Enter an API key.";
        err.hidden = false;
        return;
      }
      $("#login-submit").disabled = true;
      state.key = key;
      try {
        state.fleet = await fleetAll(state.duration);
        try {
          sessionStorage.setItem(KEY_STORE, key);
        } catch (_) {
          /* the key then lives in this page only */
        }
        input.value = "";
        err.hidden = true;
        state.lastOk = Date.now();
        onRoute();
      } catch (ex) {
        state.key = null;
        state.fleet = null;
        clearData();
        err.textContent = ex.status === 401 || ex.status === 403
          ? "The API key was rejected: " + ex.message + "."
          : "Cannot sign in: " + ex.message + ".";
        err.hidden = false;
        input.select();
      } finally {
        $("#login-submit").disabled = false;
      }
    });

    $("#logout").addEventListener("click", () => {
      location.hash = "#/";
      showLogin("");
    });
    $("#refresh-now").addEventListener("click", () => refresh());
    $("#duration").addEventListener("change", (e) => {
      state.duration = WINDOWS.includes(e.target.value) ? e.target.value : "1h";
      savePrefs();
      refresh();
    });
    $("#refresh").addEventListener("change", (e) => {
      const v = Number(e.target.value);
      state.refreshS = REFRESH_CHOICES.includes(v) ? v : 30;
      savePrefs();
      schedule();
    });
    $("#search").addEventListener("input", (e) => {
      state.search = e.target.value;
      renderOverview();
    });
    $("#site-filter").addEventListener("change", (e) => {
      state.site = e.target.value;
      renderOverview();
    });
    for (const b of document.querySelectorAll("#chart-windows button")) {
      b.addEventListener("click", () => {
        state.chartWindow = b.dataset.window;
        renderChartControls(parseRoute().port || "");
        refresh();
      });
    }
    $("#wg-add-form").addEventListener("submit", addPeer);
    $("#wg-config-dismiss").addEventListener("click", () => {
      forgetPeerConfig();
      $("#wg-peer-name").focus();
    });
    $("#chart-close").addEventListener("click", () => {
      location.hash = routerHref(routeId());
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && state.key) refresh();
    });
    window.addEventListener("hashchange", onRoute);
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (state.chart && !$("#chart-panel").hidden) drawChart(state.chart);
      }, 150);
    });
    onRoute();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
