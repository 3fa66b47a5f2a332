// Proxmox Monitor page script: behaviour only. Everything shown is rendered (and formatted) by
// the server; this script fetches fresh fragments and puts them in place, loads sparklines
// when they scroll into view, sorts tables, and applies the overview's filters as you type.
"use strict";

(function () {
  const POLL_MS = 5000;
  const SPARK_MAX_AGE_MS = 60000;

  async function get(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status === 401) { location.reload(); return null; } // session ended
    return response.ok ? response.text() : null;
  }

  // ---- tables: sorting, remembered per table id across live refreshes
  const sorts = {};

  function sortRows(table, column, ascending) {
    const th = table.querySelectorAll("th")[column];
    if (!th) return;
    table.querySelectorAll("th").forEach((o) => o.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const numeric = th.getAttribute("data-sort") === "num";
    const body = table.tBodies[0];
    const key = (row) => {
      const cell = row.cells[column];
      if (!cell) return numeric ? -1 : "";
      return numeric ? Number(cell.getAttribute("data-v")) : cell.textContent.trim().toLowerCase();
    };
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      const order = numeric ? x - y : x.localeCompare(y);
      return ascending ? order : -order;
    });
    rows.forEach((row) => body.appendChild(row));
  }

  function sortable(table) {
    table.querySelectorAll("th[data-sort]").forEach((th) => {
      const column = Array.prototype.indexOf.call(th.parentNode.children, th);
      th.tabIndex = 0;
      const sort = () => {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        if (table.id) sorts[table.id] = { column, ascending };
        sortRows(table, column, ascending);
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
    });
    const saved = table.id && sorts[table.id];
    if (saved) sortRows(table, saved.column, saved.ascending);
  }

  // ---- sparklines: fetched when visible, kept across live refreshes
  const sparks = {}; // url -> { svg, at }
  const observer = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      entries.forEach((e) => { if (e.isIntersecting) loadSpark(e.target, false); });
    }, { rootMargin: "200px" })
    : null;

  async function loadSpark(box, force) {
    const url = box.getAttribute("data-spark");
    const cached = sparks[url];
    if (cached && (!force && Date.now() - cached.at < SPARK_MAX_AGE_MS)) {
      if (box.innerHTML !== cached.svg) box.innerHTML = cached.svg;
      return;
    }
    try {
      const svg = await get(url);
      if (svg === null) return;
      sparks[url] = { svg: svg, at: Date.now() };
      document.querySelectorAll("[data-spark]").forEach((b) => {
        if (b.getAttribute("data-spark") === url) b.innerHTML = svg;
      });
    } catch (e) { /* the next round will try again */ }
  }

  function watchSparks(root) {
    root.querySelectorAll("[data-spark]").forEach((box) => {
      const cached = sparks[box.getAttribute("data-spark")];
      if (cached) box.innerHTML = cached.svg;
      if (observer) observer.observe(box); else loadSpark(box, false);
    });
  }

  // ---- live parts: the page names a URL in data-live; its answer holds elements with ids
  function enhance(root) {
    root.querySelectorAll("table.sortable").forEach(sortable);
    watchSparks(root);
  }

  async function refreshLive(live) {
    const html = await get(live.getAttribute("data-live"));
    if (html === null) return;
    const template = document.createElement("template");
    template.innerHTML = html;
    Array.from(template.content.children).forEach((fresh) => {
      const old = fresh.id && document.getElementById(fresh.id);
      if (!old) return;
      if (observer) old.querySelectorAll("[data-spark]").forEach((b) => observer.unobserve(b));
      old.replaceWith(fresh);
      enhance(fresh);
    });
  }

  async function refreshCharts() {
    for (const box of document.querySelectorAll("[data-chart]")) {
      try {
        const svg = await get(box.getAttribute("data-chart"));
        if (svg !== null) box.innerHTML = svg;
      } catch (e) { /* the next round will try again */ }
    }
  }

  // ---- the overview's filters: applied as you type, the URL kept shareable
  function filters(form, live) {
    let timer = null;
    const apply = () => {
      const params = new URLSearchParams();
      new FormData(form).forEach((value, key) => { if (value !== "") params.append(key, value); });
      const query = params.toString();
      history.replaceState(null, "", query ? "/?" + query : "/");
      live.setAttribute("data-live", "/?" + (query ? query + "&" : "") + "fragment=1");
      refreshLive(live).catch(() => {});
    };
    const later = () => { clearTimeout(timer); timer = setTimeout(apply, 250); };
    form.addEventListener("input", later);
    form.addEventListener("change", later);
    form.addEventListener("submit", (e) => { e.preventDefault(); apply(); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    enhance(document);
    const live = document.querySelector("[data-live]");
    const form = document.querySelector("form[data-filters]");
    if (form && live) filters(form, live);
    const longRange = /[?&]range=(24h|7d|30d|1y)/.test(location.search);
    let ticks = 0;
    setInterval(() => {
      ticks++;
      if (document.hidden) return;
      if (live) refreshLive(live).catch(() => {});
      if (ticks % (longRange ? 60 : 6) === 0) refreshCharts();
    }, POLL_MS);
  });
})();
