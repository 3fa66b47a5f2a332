// Proxmox Monitor page script: keeps values current without reloading the page, sorts tables.
// Values come from the JSON API every 5 s; charts are re-fetched as server-rendered SVG.
"use strict";

(function () {
  const POLL_MS = 5000;

  function bytes(v) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    let x = Math.abs(v);
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    const digits = i === 0 || x >= 100 ? 0 : x >= 10 ? 1 : 2;
    return (v < 0 ? "-" : "") + x.toFixed(digits) + " " + units[i];
  }
  function duration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + (s % 60) + "s";
    return s + "s";
  }
  function ago(unix) {
    const age = Date.now() / 1000 - unix;
    return age < 5 ? "just now" : duration(age) + " ago";
  }
  const FORMATS = {
    pct: (v) => v.toFixed(1) + " %",
    bytes: bytes,
    rate: (v) => bytes(v) + "/s",
    load: (v) => v.toFixed(2),
    dur: duration,
  };

  function lookup(obj, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  // Writes the values of `data` into the `data-k` elements of `root`.
  function fill(root, data) {
    root.querySelectorAll("[data-k]").forEach((el) => {
      if (el.closest("[data-guest]")) return; // guest rows are filled from the guest list
      const key = el.getAttribute("data-k");
      const fmt = el.getAttribute("data-f");
      if (key === "status_line") return;
      const value = lookup(data, key);
      if (fmt === "status" || fmt === "gstatus") {
        const text = value === "never_connected" ? "never connected" : value;
        if (!text) return;
        el.textContent = text;
        el.className = "badge " + ({ online: "online", running: "online", offline: "offline",
          paused: "degraded", never_connected: "never" }[value] || "stopped");
        return;
      }
      if (fmt === "pool") return; // pool badges change rarely; the next page load shows them
      if (value === undefined || value === null) return;
      el.textContent = FORMATS[fmt] ? FORMATS[fmt](value) : String(value);
    });
  }

  function statusLine(h) {
    if (h.status === "online") {
      return "online" + (h.status_since ? " since " + ago(h.status_since) : "") +
        " · last seen " + (h.last_seen_at ? ago(h.last_seen_at) : "–");
    }
    if (h.status === "offline") {
      const since = h.status_since || h.last_seen_at;
      return "offline since " + (since ? ago(since) : "–");
    }
    return "never connected — start the agent with this host's token";
  }

  function updateHost(el, h) {
    fill(el, h);
    const line = el.querySelector("[data-k=status_line]");
    if (line) line.textContent = statusLine(h);
    const worst = h.pools && h.pools.worst_health;
    const degraded = worst && worst !== "ONLINE";
    const cls = h.status === "offline" ? "is-offline" : h.status === "never_connected" ? "is-never"
      : degraded ? "is-degraded" : "is-online";
    el.classList.remove("is-offline", "is-never", "is-degraded", "is-online");
    el.classList.add(cls);
  }

  async function poll(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.status === 401) { location.reload(); return; } // session ended: show the login page
    if (!response.ok) return;
    const data = await response.json();
    if (Array.isArray(data.hosts)) {
      const cards = document.querySelectorAll("[data-host]");
      if (cards.length !== data.hosts.length) { location.reload(); return; } // hosts added or removed
      data.hosts.forEach((h) => {
        const el = document.querySelector('[data-host="' + CSS.escape(h.name) + '"]');
        if (el) updateHost(el, h);
      });
    } else {
      const el = document.querySelector('[data-host="' + CSS.escape(data.name) + '"]');
      if (el) updateHost(el, data);
      const guests = (data.fast && data.fast.data && data.fast.data.guests) || [];
      guests.forEach((g) => {
        const row = document.querySelector('tr[data-guest="' + g.vmid + '"]');
        if (!row) return;
        row.querySelectorAll("[data-k]").forEach((cell) => {
          const key = cell.getAttribute("data-k");
          const fmt = cell.getAttribute("data-f");
          const value = g[key];
          if (fmt === "gstatus") {
            cell.textContent = value;
            cell.className = "badge " + (value === "running" ? "online" : value === "paused" ? "degraded" : "stopped");
          } else if (key === "mem_used_bytes") {
            if (value != null) cell.innerHTML = "";
            if (value != null) {
              cell.append(bytes(value));
              if (g.mem_limit_bytes) {
                const small = document.createElement("small");
                small.textContent = " / " + bytes(g.mem_limit_bytes);
                cell.append(" ", small);
              }
            }
          } else {
            cell.textContent = value == null ? "–" : FORMATS[fmt] ? FORMATS[fmt](value) : String(value);
          }
          const td = cell.closest("td");
          if (td && td.hasAttribute("data-v")) td.setAttribute("data-v", value == null ? -1 : value);
        });
      });
    }
  }

  async function refreshCharts() {
    for (const box of document.querySelectorAll("[data-chart]")) {
      try {
        const response = await fetch(box.getAttribute("data-chart"), { credentials: "same-origin" });
        if (response.ok) box.innerHTML = await response.text();
      } catch (e) { /* the next round will try again */ }
    }
  }

  function refreshTimes() {
    document.querySelectorAll("time[data-ago]").forEach((t) => {
      t.textContent = ago(Number(t.getAttribute("datetime")));
    });
  }

  function sortable(table) {
    table.querySelectorAll("th[data-sort]").forEach((th, column) => {
      th.tabIndex = 0;
      const sort = () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach((o) => o.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const numeric = th.getAttribute("data-sort") === "num";
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        const key = (row) => {
          const cell = row.cells[column];
          return numeric ? Number(cell.getAttribute("data-v")) : cell.textContent.trim().toLowerCase();
        };
        rows.sort((a, b) => {
          const x = key(a), y = key(b);
          const order = numeric ? x - y : x.localeCompare(y);
          return ascending ? order : -order;
        });
        rows.forEach((row) => body.appendChild(row));
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("table.sortable").forEach(sortable);
    const live = document.querySelector("[data-live]");
    if (!live) return;
    const url = live.getAttribute("data-live");
    const longRange = /[?&]range=(24h|7d|30d|1y)/.test(location.search);
    let ticks = 0;
    setInterval(() => {
      ticks++;
      if (document.hidden) return;
      poll(url).catch(() => {});
      refreshTimes();
      if (ticks % (longRange ? 60 : 6) === 0) refreshCharts();
    }, POLL_MS);
  });
})();
