// The Crabcat console. Talks only to the admin API of the origin it came
// from, with the token kept in this tab's sessionStorage and sent as a
// bearer header. Every value an app or the container reports is put into
// the page with textContent (or an SVG attribute), never parsed as markup.
"use strict";

(() => {
  const TOKEN_KEY = "crabcat.console.token";
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  let pollTimer = null;
  let polling = false;
  const rows = new Map(); // app name -> its row's elements

  // ---- the admin API ------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) throw new ApiError(401, "no token");
    const options = { method, headers: { Authorization: `Bearer ${token}` }, cache: "no-store" };
    if (body !== undefined) options.body = body;
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      throw new ApiError(0, `cannot reach the admin API (${error.message})`);
    }
    let json = null;
    try {
      json = await response.json();
    } catch (_) {
      json = null;
    }
    if (!response.ok) {
      const reason = json && typeof json.error === "string" ? json.error : response.statusText;
      throw new ApiError(response.status, reason);
    }
    return json;
  }

  // ---- signing in and out -------------------------------------------------

  function showLogin(message) {
    stopPolling();
    sessionStorage.removeItem(TOKEN_KEY);
    clearData();
    $("console").hidden = true;
    $("summary").hidden = true;
    $("live").hidden = true;
    $("sign-out").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.textContent = message || "";
    error.hidden = !message;
    const token = $("token");
    token.value = "";
    token.focus();
  }

  function showConsole() {
    $("login").hidden = true;
    $("console").hidden = false;
    $("summary").hidden = false;
    $("live").hidden = false;
    $("sign-out").hidden = false;
  }

  function clearData() {
    rows.clear();
    $("apps").tBodies[0].replaceChildren();
    for (const id of ["container-version", "container-rss", "container-images"]) $(id).textContent = "–";
    notice("");
  }

  async function signIn(event) {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login-error").hidden = true;
    try {
      await refresh();
    } catch (error) {
      // refresh() already showed the login form for a refused token.
      if (error.status !== 401) showLogin(error.message);
      return;
    }
    showConsole();
    schedule();
  }

  // ---- polling --------------------------------------------------------------

  function schedule() {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, POLL_MS);
  }

  function stopPolling() {
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  async function poll() {
    if (document.hidden || !sessionStorage.getItem(TOKEN_KEY)) return;
    try {
      await refresh();
      $("live").classList.remove("stale");
    } catch (error) {
      if (error.status === 401) return;
      $("live").textContent = `Not updated: ${error.message}; retrying`;
      $("live").classList.add("stale");
    }
    if (sessionStorage.getItem(TOKEN_KEY)) schedule();
  }

  // Fetches /apps and /console/data and renders them. A refused token
  // (401) clears everything and goes back to the sign-in form.
  async function refresh() {
    if (polling) return;
    polling = true;
    try {
      const [apps, data] = await Promise.all([api("GET", "/apps"), api("GET", "/console/data")]);
      render(apps, data);
    } catch (error) {
      if (error.status === 401) showLogin("The admin API refused this token.");
      throw error;
    } finally {
      polling = false;
    }
  }

  // ---- rendering ------------------------------------------------------------

  function render(apps, data) {
    const container = data.container;
    $("container-version").textContent = container.version;
    $("container-rss").textContent = container.resident_bytes == null ? "–" : bytes(container.resident_bytes);
    $("container-images").textContent = `${container.images} (${bytes(container.image_bytes)} mapped)`;
    apps.sort((a, b) => a.name.localeCompare(b.name));
    const seen = new Set();
    for (const app of apps) {
      seen.add(app.name);
      const row = rows.get(app.name) || addRow(app.name);
      fillRow(row, app, data.apps[app.name], container);
    }
    for (const [name, row] of rows) {
      if (!seen.has(name)) {
        row.main.remove();
        row.error.remove();
        rows.delete(name);
      }
    }
    // Rows in name order. Moving a row would take the keyboard focus off
    // its buttons: only when the order changed (an app came).
    const body = $("apps").tBodies[0];
    const wanted = apps.flatMap((app) => [rows.get(app.name).main, rows.get(app.name).error]);
    if (wanted.some((tr, i) => body.children[i] !== tr)) body.append(...wanted);
    $("no-apps").hidden = apps.length > 0;
    $("apps").hidden = apps.length === 0;
    $("live").textContent = `Live · updated ${new Date().toLocaleTimeString("en-GB")}`;
  }

  function cell(tr, label, className) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (className) td.className = className;
    tr.append(td);
    return td;
  }

  function addRow(name) {
    const main = document.createElement("tr");
    main.className = "app";
    main.dataset.app = name;
    const nameCell = document.createElement("th");
    nameCell.scope = "row";
    nameCell.className = "name";
    nameCell.textContent = name;
    main.append(nameCell);
    const row = {
      main,
      state: cell(main, "State", "state"),
      version: cell(main, "Version", "version"),
      context: cell(main, "Context", "context"),
      requests: cell(main, "Requests", "num requests"),
      inFlight: cell(main, "In flight", "num in-flight"),
      errors: cell(main, "Errors", "num errors"),
      sessions: cell(main, "Sessions", "num sessions"),
      images: cell(main, "Images kept", "num images"),
      chart: cell(main, "Last minutes", "chart"),
      actions: cell(main, "Actions", "actions"),
      buttons: {},
      error: document.createElement("tr"),
    };
    const badge = document.createElement("span");
    badge.className = "badge";
    row.state.append(badge);
    row.badge = badge;
    for (const [action, label] of [["reload", "Reload"], ["stop", "Stop"], ["start", "Start"], ["undeploy", "Undeploy"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = action === "undeploy" || action === "stop" ? "danger small" : "small";
      button.dataset.action = action;
      button.textContent = label;
      button.setAttribute("aria-label", `${label} ${name}`);
      button.addEventListener("click", () => act(name, action));
      row.actions.append(button);
      row.buttons[action] = button;
    }
    row.error.className = "app-error";
    row.error.dataset.app = name;
    row.errorCell = document.createElement("td");
    row.errorCell.colSpan = 11;
    row.error.append(row.errorCell);
    row.error.hidden = true;
    row.chart.append(chart(), chart());
    rows.set(name, row);
    return row;
  }

  function fillRow(row, app, figures, container) {
    const state = app.state;
    row.main.dataset.state = state;
    row.badge.textContent = state;
    row.badge.className = `badge ${state}`;
    row.version.textContent = app.version || "–";
    row.context.textContent = app.context_path;
    row.requests.textContent = count(app.requests_served);
    row.inFlight.textContent = count(app.requests_in_flight);
    row.errors.textContent = figures ? count(figures.errors) : "–";
    row.errors.classList.toggle("bad", !!figures && figures.errors > 0);
    // `sessions` arrives with HTTP sessions; until then there is nothing to show.
    row.sessions.textContent = typeof app.sessions === "number" ? count(app.sessions) : "–";
    row.images.textContent = count(app.images_kept_by_reloads);
    row.images.title = `${app.images} image(s) of this app loaded, ${bytes(app.image_bytes)} mapped`;
    const busy = row.main.classList.contains("busy");
    row.buttons.reload.disabled = busy || state !== "running";
    row.buttons.stop.disabled = busy || state !== "running";
    row.buttons.start.disabled = busy || !(state === "stopped" || state === "failed");
    row.buttons.undeploy.disabled = busy;
    const errors = [];
    if (app.error) errors.push(`Failed: ${app.error}`);
    if (app.last_error && app.last_error !== app.error) errors.push(`Last error: ${app.last_error}`);
    row.errorCell.textContent = errors.join("\n");
    row.error.hidden = errors.length === 0;
    drawCharts(row, figures ? figures.history : [], container);
  }

  // ---- charts ---------------------------------------------------------------

  function chart() {
    const figure = document.createElement("figure");
    figure.className = "spark";
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 100 32");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const caption = document.createElement("figcaption");
    figure.append(svg, caption);
    return figure;
  }

  // Rate (area) in the first chart, p50 and p99 latency (lines) in the
  // second, over the history there is (at least a minute, at most the
  // window), ending now; a gap where no point was taken.
  function drawCharts(row, history, container) {
    const [rateFigure, latencyFigure] = row.chart.children;
    const end = Date.now();
    const first = history.length ? history[0].t - container.sample_seconds * 1000 : end;
    const span = Math.min(container.window_seconds * 1000, Math.max(60000, end - first));
    const gap = container.sample_seconds * 1000 * 2.5;
    const last = history.length ? history[history.length - 1] : null;
    const recent = last && end - last.t < gap;

    const rateMax = niceMax(Math.max(0, ...history.map((p) => p.rate)));
    plot(rateFigure.firstChild, history, end, span, gap, [{ key: "rate", cls: "rate", area: true }], rateMax);
    const rateText = recent ? `${number(last.rate)} req/s` : "– req/s";
    rateFigure.lastChild.textContent = rateText;
    rateFigure.firstChild.setAttribute("aria-label", `Request rate, last ${minutes(span)}: now ${rateText}, peak ${number(rateMax)} req/s`);

    const latMax = niceMax(Math.max(0, ...history.map((p) => p.p99_ms || 0)));
    plot(latencyFigure.firstChild, history, end, span, gap,
      [{ key: "p99_ms", cls: "p99" }, { key: "p50_ms", cls: "p50" }], latMax);
    const latText = recent && last.p50_ms != null
      ? `p50 ${number(last.p50_ms)} · p99 ${number(last.p99_ms)} ms` : "p50 – · p99 – ms";
    latencyFigure.lastChild.textContent = latText;
    latencyFigure.firstChild.setAttribute("aria-label", `Latency, last ${minutes(span)}: ${latText}`);
  }

  function plot(svg, history, end, span, gap, series, max) {
    svg.replaceChildren();
    const x = (t) => 100 - ((end - t) / span) * 100;
    const y = (v) => 31 - (v / max) * 29;
    for (const s of series) {
      // Split into runs of points without gaps between them.
      const runs = [];
      let run = [];
      let previous = null;
      for (const p of history) {
        if (end - p.t > span) continue;
        const value = p[s.key];
        if (value == null || (previous && p.t - previous.t > gap)) {
          if (run.length) runs.push(run);
          run = [];
        }
        if (value != null) run.push([x(p.t), y(value)]);
        previous = p;
      }
      if (run.length) runs.push(run);
      for (const points of runs) {
        if (points.length === 1) points.unshift([points[0][0] - 1, points[0][1]]);
        const line = points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
        if (s.area) {
          const area = document.createElementNS(SVG, "polygon");
          area.setAttribute("points", `${points[0][0].toFixed(1)},31 ${line} ${points[points.length - 1][0].toFixed(1)},31`);
          area.setAttribute("class", `${s.cls} fill`);
          svg.append(area);
        }
        const polyline = document.createElementNS(SVG, "polyline");
        polyline.setAttribute("points", line);
        polyline.setAttribute("class", s.cls);
        svg.append(polyline);
      }
    }
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  // ---- actions --------------------------------------------------------------

  const PAST = { reload: "reloaded", stop: "stopped", start: "started", undeploy: "undeployed" };

  async function act(name, action) {
    if (action === "stop" || action === "undeploy") {
      const what = action === "stop"
        ? `Stop ${name}? It is drained and destroyed; its requests get 503 until it is started again.`
        : `Undeploy ${name}? It is stopped and its file is removed from the deploy directory.`;
      if (!(await confirmAction(what, action === "stop" ? "Stop" : "Undeploy"))) return;
    }
    const row = rows.get(name);
    if (row) setBusy(row, true);
    notice(`${name}: ${action}…`);
    try {
      const done = action === "undeploy"
        ? await api("DELETE", `/apps/${encodeURIComponent(name)}`)
        : await api("POST", `/apps/${encodeURIComponent(name)}/${action}`);
      notice(describe(name, done, PAST[action]), "ok");
    } catch (error) {
      if (error.status === 401) return;
      notice(`${name}: ${action} failed: ${error.message}`, "bad");
    } finally {
      if (row) setBusy(row, false);
    }
    refresh().catch(() => {});
  }

  function setBusy(row, busy) {
    row.main.classList.toggle("busy", busy);
    if (busy) for (const button of Object.values(row.buttons)) button.disabled = true;
  }

  function describe(name, done, fallback) {
    const outcome = (done && done.outcome) || fallback;
    const version = done && done.app && done.app.version ? ` (version ${done.app.version})` : "";
    return `${name}: ${outcome}${version}`;
  }

  // A modal dialog: resolves true for Confirm, false for Cancel or Escape.
  function confirmAction(text, label) {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = label;
    return new Promise((resolve) => {
      const finish = (answer) => {
        $("confirm-ok").removeEventListener("click", yes);
        $("confirm-cancel").removeEventListener("click", no);
        dialog.removeEventListener("cancel", no);
        if (dialog.open) dialog.close();
        resolve(answer);
      };
      const yes = () => finish(true);
      const no = (event) => {
        if (event) event.preventDefault();
        finish(false);
      };
      $("confirm-ok").addEventListener("click", yes);
      $("confirm-cancel").addEventListener("click", no);
      dialog.addEventListener("cancel", no);
      dialog.showModal();
      $("confirm-cancel").focus();
    });
  }

  // ---- deploying --------------------------------------------------------------

  // libhello.so -> hello; characters an app name cannot have become '-'.
  function nameOf(fileName) {
    let base = fileName.replace(/^.*[\\/]/, "").replace(/\.(so|dylib|dll)$/, "");
    if (base.startsWith("lib") && base.length > 3) base = base.slice(3);
    return base.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 64);
  }

  function fileChosen() {
    const file = $("module-file").files[0];
    if (file) $("module-name").value = nameOf(file.name);
  }

  async function deploy(event) {
    event.preventDefault();
    const file = $("module-file").files[0];
    const name = $("module-name").value.trim();
    if (!file || !name) return;
    const button = $("deploy-button");
    button.disabled = true;
    notice(`${name}: uploading ${file.name} (${bytes(file.size)})…`);
    try {
      const done = await api("PUT", `/apps/${encodeURIComponent(name)}`, file);
      notice(describe(name, done, "deployed"), "ok");
      $("deploy-form").reset();
    } catch (error) {
      if (error.status !== 401) notice(`${name}: deploying ${file.name} failed: ${error.message}`, "bad");
    } finally {
      button.disabled = false;
    }
    refresh().catch(() => {});
  }

  // ---- small helpers ----------------------------------------------------------

  function notice(text, kind) {
    const element = $("notice");
    element.textContent = text;
    element.className = `notice ${kind || ""}`;
    element.hidden = !text;
  }

  function count(n) {
    return typeof n === "number" ? n.toLocaleString("en-GB") : "–";
  }

  function number(n) {
    if (n == null) return "–";
    if (n >= 100) return Math.round(n).toLocaleString("en-GB");
    if (n >= 10) return n.toFixed(1);
    return n.toFixed(2);
  }

  function bytes(n) {
    if (typeof n !== "number") return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
  }

  function minutes(ms) {
    const n = Math.round(ms / 60000);
    return n === 1 ? "minute" : `${n} minutes`;
  }

  // ---- start --------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", signIn);
    $("deploy-form").addEventListener("submit", deploy);
    $("module-file").addEventListener("change", fileChosen);
    $("sign-out").addEventListener("click", () => showLogin(""));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && sessionStorage.getItem(TOKEN_KEY) && !$("console").hidden) poll();
    });
    if (sessionStorage.getItem(TOKEN_KEY)) {
      refresh().then(() => {
        showConsole();
        schedule();
      }, (error) => {
        if (error.status !== 401) showLogin(error.message);
      });
    } else {
      showLogin("");
    }
  });
})();
