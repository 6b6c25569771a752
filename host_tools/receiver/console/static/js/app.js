// The console page: login, the live queue with its alarm, the alert page (map,
// audio, timeline, actions), statistics, the audit log, accounts and devices.
// Plain JS modules, no build step; every access the server audits is made by
// the server's rules, the page only hides what a role cannot use.
import { api, ApiError, liveEvents, setCsrf } from "./api.js";
import { Alarm } from "./alarm.js";
import { drawTrack } from "./map.js";
import { dur, facts, h, table } from "./dom.js";

const $ = (id) => document.getElementById(id);
const state = { me: null, queue: null, queueAt: 0, events: null, view: null, detail: null, detailAt: 0,
                refreshing: false, dirty: false, shownAt: {} };
const alarm = new Alarm();
window.sottoConsole = { alarm, state };

const may = (right) => state.me && state.me.rights.includes(right);
const views = [
  ["queue", "Alarm queue", "live-alerts"], ["stats", "Statistics", "statistics"],
  ["audit", "Audit", "audit-log"], ["operators", "Operators", "accounts"], ["devices", "Devices", "devices"],
];

// ---- session ----------------------------------------------------------------
async function start() {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  try { enter(await api.get("/api/session")); } catch (e) { showLogin(); }
}

async function login(ev) {
  ev.preventDefault();
  alarm.unlock();                      // the click is the gesture that lets the alarm sound
  $("login-error").textContent = "";
  try {
    enter(await api.post("/api/login", { name: $("login-name").value, password: $("login-password").value }));
    $("login-password").value = "";
  } catch (e) { $("login-error").textContent = e.message; }
}

async function logout() {
  try { await api.post("/api/logout"); } catch (e) { /* gone already */ }
  showLogin();
}

function showLogin(message) {
  state.me = null; alarm.stop();
  if (state.events) { state.events.close(); state.events = null; }
  $("bar").hidden = true; $("alarm-banner").hidden = true; $("view").replaceChildren();
  $("login").hidden = false; $("login-error").textContent = message || "";
}

function enter(me) {
  state.me = me; setCsrf(me.csrf_token);
  $("login").hidden = true; $("bar").hidden = false;
  $("who").textContent = `${me.name} (${me.role})`;
  $("nav").replaceChildren(...views.filter(([, , r]) => may(r)).map(([id, label]) =>
    h("a", { href: `#/${id}`, id: `nav-${id}` }, label)));
  state.events = liveEvents(onEvent, (up) => { $("live").textContent = up ? "live" : "offline"; $("live").classList.toggle("on", up); });
  if (may("live-alerts")) refreshQueue();
  if (!location.hash || location.hash === "#/") location.hash = `#/${(views.find(([, , r]) => may(r)) || ["queue"])[0]}`;
  else route();
}

function failed(e) {
  if (e instanceof ApiError && e.status === 401) { showLogin("Your session ended; log in again."); return true; }
  return false;
}

// ---- live updates ------------------------------------------------------------
function onEvent(kind, data) {
  if (kind === "logout") { showLogin("Your session ended; log in again."); return; }
  if (["alert", "frame", "duress", "state", "silent", "rejected", "device", "command"].includes(kind) && may("live-alerts")) {
    refreshQueue();
    // a device's frames outside the alert (a heartbeat, a reply) change its commands' states too
    if (state.view === "alert" && state.detail && (data.alert === state.detail.id
        || (data.device && data.device === state.detail.device))) refreshDetail();
  }
  if (kind === "audit" && state.view === "audit") renderAudit(false);
}

async function refreshQueue() {
  if (state.refreshing) { state.dirty = true; return; }
  state.refreshing = true;
  try {
    do {
      state.dirty = false;
      state.queue = await api.get("/api/alerts"); state.queueAt = performance.now();
      updateAlarm();
      if (state.view === "queue") renderQueue();
    } while (state.dirty);
  } catch (e) { failed(e); } finally { state.refreshing = false; }
}

function updateAlarm() {
  const waiting = state.queue.alerts.filter((a) => a.state === "open");
  const duress = waiting.some((a) => a.duress);
  alarm.set(waiting.length, duress, duress ? "DURESS" : `${waiting.length} ALERT${waiting.length > 1 ? "S" : ""}`);
  const banner = $("alarm-banner");
  banner.hidden = waiting.length === 0;
  banner.classList.toggle("duress", duress);
  banner.replaceChildren(...(waiting.length ? [
    `${waiting.length} alert${waiting.length > 1 ? "s" : ""} not acknowledged${duress ? " — DURESS" : ""}: `,
    ...waiting.map((a) => h("a", { href: `#/alerts/${a.id}`, style: "color:#fff;margin-right:.6rem" },
                            `${a.id} ${a.officer || a.device}`))] : []));
}

setInterval(() => { if (state.view === "queue" && state.queue) renderQueue(); }, 1000);

// ---- routing -----------------------------------------------------------------
function route() {
  if (!state.me) return;
  const [, view, arg] = location.hash.split("/");
  for (const [id] of views) { const a = $(`nav-${id}`); if (a) a.classList.toggle("active", id === view); }
  state.view = view === "alerts" ? "alert" : view;
  const render = { queue: renderQueue, alert: () => renderAlert(arg), stats: renderStats, audit: renderAudit,
                   operators: renderOperators, devices: renderDevices }[state.view];
  if (render) render(); else $("view").replaceChildren(h("p", { className: "empty" }, "Nothing here."));
}

// ---- the queue ---------------------------------------------------------------
const FLAG_TITLES = {
  "time-behind": "frames dated far before they arrived (or undated): the device clock is off; trust the receipt times",
  "time-ahead": "frames dated after they arrived: the device clock is off; trust the receipt times",
  "signed-before-revocation": "signed by a since-revoked key, dated before the revocation (see the operator guide)",
};
function renderQueue() {
  const q = state.queue;
  if (!q) { $("view").replaceChildren(h("p", { className: "empty" }, "loading…")); return; }
  const dt = (performance.now() - state.queueAt) / 1000;
  const plus = (v) => (v === null || v === undefined ? null : v + dt);
  const rows = q.alerts.map((a) => {
    const cls = a.duress && a.state !== "closed" ? "duress" : a.state;
    return h("tr", { className: `alert-row ${cls}`, dataset: { alert: a.id, state: a.state },
                     onclick: () => { location.hash = `#/alerts/${a.id}`; } },
      h("td", {}, h("strong", {}, a.id)),
      h("td", {}, h("span", { className: `badge ${a.duress ? "duress" : a.state}` }, a.duress ? `DURESS ${a.state}` : a.state),
        a.held && h("span", { className: "badge held", title: "on hold: purge keeps it" }, "held"),
        a.insecure_tls && h("span", { className: "badge insecure", title: "the device does not authenticate the centre (bench setting)" }, "insecure-tls"),
        a.unauthenticated_answers ? h("span", { className: "badge insecure", title: "answers the device could not authenticate" }, `unauth ${a.unauthenticated_answers}`) : null,
        ...(a.flags || []).map((f) => h("span", { className: "badge flagged", title: FLAG_TITLES[f] || f }, f))),
      h("td", {}, a.officer || "–"), h("td", {}, a.device),
      h("td", { className: "age" }, dur(plus(a.age_s))), h("td", {}, dur(plus(a.last_heard_s))),
      h("td", {}, a.unacknowledged_s !== null ? h("strong", {}, dur(plus(a.unacknowledged_s)))
                                             : `${dur(a.time_to_ack_s)} (${a.acknowledged_by})`),
      h("td", {}, a.location_age_s !== null ? `${dur(plus(a.location_age_s))} old, ±${a.location_accuracy_m} m` : "none"),
      h("td", {}, `${a.audio_seconds} s`),
      h("td", { className: `chain-${a.chain}`, title: a.chain_summary }, a.chain));
  });
  const out = [h("h1", {}, "Alarm queue")];
  out.push(rows.length ? table(["Alert", "State", "Officer", "Device", "Age", "Last heard", "Unacknowledged",
                                "Location", "Audio", "Chain"], rows)
                       : h("p", { className: "empty", id: "queue-empty" }, "No open alerts."));
  // a device without a heartbeat yet, or whose interval a configuration changed since its last
  // heartbeat, is judged by the interval the centre expects of it, and says which
  const expected = (s) => s.heartbeat_from === "configured" ? `the configured ${dur(s.heartbeat_s)} (version ${s.config_version})`
    : s.heartbeat_from === "pending" ? `${dur(s.heartbeat_s)} (configuration version ${s.config_version} not confirmed yet)`
    : `the ${s.heartbeat_from} ${dur(s.heartbeat_s)}`;
  const silent = [...q.silent_devices.map((s) => [s.device, s.officer, `overdue ${dur(s.overdue_s)}`
                    + (s.no_heartbeat_yet ? `, no heartbeat yet (expected within ${expected(s)})`
                       : s.heartbeat_from !== "heartbeat" ? `, heartbeat expected within ${expected(s)}, set since its last heartbeat`
                       : ""), s.last_seen]),
                  ...q.never_heard.map((s) => [s.device, s.officer,
                    `never heard (registered ${dur(s.silent_s)} ago; expected within ${expected(s)})`, "–"])];
  out.push(h("h2", {}, `Silent devices (${silent.length})`));
  out.push(silent.length ? table(["Device", "Officer", "Silent", "Last heard"],
                                 silent.map((r) => h("tr", { className: "silent-row" }, r.map((c) => h("td", {}, c || "–")))))
                         : h("p", { className: "muted" }, "Every device is reporting."));
  const visits = q.visits || [];
  const overdue = visits.filter((v) => v.state === "overdue").length;
  out.push(h("h2", {}, `Check-in visits (${visits.length}${overdue ? `, ${overdue} overdue` : ""})`));
  out.push(visits.length ? table(["Device", "Officer", "Visit", "State", "Ends (centre)", "Left"],
    visits.map((v) => h("tr", { className: `visit-row visit-${v.state}` },
      h("td", {}, v.device), h("td", {}, v.officer || "–"), h("td", {}, String(v.visit)),
      h("td", {}, v.state === "alerted" ? `alerted (${v.alert})` : v.state),
      h("td", {}, v.due), h("td", {}, v.left_s >= 0 ? dur(v.left_s) : `${dur(-v.left_s)} overdue`))))
                         : h("p", { className: "muted" }, "No open visits."));
  out.push(h("h2", {}, `Rejected frames, last 24 h (${q.rejections.length})`));
  if (q.rejections.length) out.push(table(["Device", "Officer", "Reason", "Count", "Last"],
    q.rejections.map((r) => h("tr", {}, h("td", {}, r.device), h("td", {}, r.officer || "–"), h("td", {}, r.reason),
                                  h("td", {}, r.count), h("td", {}, `${dur(r.last_s)} ago`)))));
  $("view").replaceChildren(...out);
}

// ---- one alert ---------------------------------------------------------------
async function renderAlert(id) {
  state.detail = { id }; state.points = -1; state.audioChunks = -1;
  $("view").replaceChildren(h("p", { className: "empty" }, `loading ${id}…`));
  await refreshDetail(true);
}

async function refreshDetail(first) {
  const id = state.detail.id;
  let d;
  try { d = await api.get(`/api/alerts/${id}`); } catch (e) {
    if (!failed(e)) $("view").replaceChildren(h("p", { className: "error" }, e.message));
    return;
  }
  if (state.view !== "alert" || state.detail.id !== id) return;
  state.detail = d; state.detailAt = performance.now();
  if (first || !$("alert-page")) buildAlertPage(d);
  fillAlertPage(d);
}

function buildAlertPage(d) {
  const audio = h("audio", { id: "audio", controls: true, preload: "none" });
  audio.addEventListener("ended", () => { if (state.audioPending) loadAudio(true); });
  const outcome = h("input", { id: "outcome", placeholder: "outcome, e.g. officer safe", size: 30 });
  const actions = h("div", { className: "actions", id: "actions" },
    may("live-alerts") && h("button", { id: "ack", className: "primary", onclick: () => act("ack") }, "Acknowledge"),
    may("close") && [outcome, h("button", { id: "close", onclick: () => act("close", { outcome: outcome.value }) }, "Close")],
    may("export") && h("button", { id: "export", onclick: () => act("export") }, "Export evidence"),
    h("span", { id: "action-result", className: "muted" }));
  const seconds = h("input", { id: "cmd-seconds", type: "number", value: 30, min: 1, max: 600, style: "width:4.5rem" });
  const question = h("select", { id: "cmd-question" }, ["can-you-talk", "are-you-safe"].map((q) => h("option", {}, q)));
  const commands = may("live-alerts") && h("div", { className: "actions", id: "command-buttons" },
    h("button", { id: "cmd-listen", title: "the officer feels that an operator is listening", onclick: () => command({ op: "listen" }) }, "Listening"),
    h("button", { id: "cmd-more-audio", onclick: () => command({ op: "more-audio", seconds: Number(seconds.value) }) }, "More audio"), seconds, " s",
    h("button", { id: "cmd-locate", onclick: () => command({ op: "locate" }) }, "Locate now"),
    h("button", { id: "cmd-ask", onclick: () => command({ op: "ask", question: question.value }) }, "Ask"), question,
    h("span", { id: "command-result", className: "muted" }));
  $("view").replaceChildren(h("div", { id: "alert-page" },
    h("h1", { id: "alert-title" }), actions,
    h("div", { className: "grid" },
      h("div", { className: "panel" }, h("div", { id: "map", className: "map" })),
      h("div", { className: "panel" }, h("div", { id: "facts" }), h("h2", {}, "Audio"), audio,
        h("p", { id: "audio-note", className: "muted" }))),
    h("h2", {}, "Commands to the device"), commands || null, h("div", { className: "panel", id: "commands" }),
    h("h2", {}, "Frames"), h("div", { className: "timeline panel", id: "timeline" })));
}

function fillAlertPage(d) {
  $("alert-title").replaceChildren(`${d.id} `, h("span", { className: `badge ${d.duress ? "duress" : d.state}` },
    d.duress ? `DURESS ${d.state}` : d.state), ` ${d.officer || ""}`);
  const ack = $("ack"); if (ack) ack.disabled = d.state !== "open";
  const close = $("close"); if (close) close.disabled = d.state === "closed";
  for (const b of document.querySelectorAll("#command-buttons button")) b.disabled = d.state === "closed";
  const loc = d.location;
  $("facts").replaceChildren(facts([
    ["Officer", d.officer || "–"], ["Device", `${d.device}, session ${d.session}`], ["Trigger", d.trigger],
    ["Started", `${d.started} (${dur(d.age_s)} ago)`], ["Last heard", `${dur(d.last_heard_s)} ago`],
    ["Acknowledged", d.acknowledged_by ? `${d.acknowledged_by} after ${dur(d.time_to_ack_s)}` : `not yet (${dur(d.unacknowledged_s)})`],
    d.closed_by && ["Closed", `${d.closed_by}: ${d.outcome}`],
    ["Location", loc ? `${loc.lat.toFixed(7)}, ${loc.lon.toFixed(7)} ±${loc.accuracy_m} m, fix ${dur(loc.age_now_s)} old (${loc.source})` : "none received"],
    ["Chain", d.chain.summary],
    d.delivered_via === "secondary" && ["Path", "delivered via secondary (the device's primary receiver was not answering)"],
    ["Battery", d.battery !== null ? `${d.battery} %` : "–"],
    d.ended_on_device && ["On the device", d.ended_on_device],
    ["Hold", d.held ? `held by ${d.held.by} since ${d.held.since}: ${d.held.reason}` : "not held"],
    ["Device trust", trustText(d.device_trust)],
  ]));
  $("commands").replaceChildren(d.commands.length
    ? table(["Id", "Command", "By", "State", "Answer", "Queued", "Delivered", "Replied"],
        d.commands.map((c) => h("tr", { className: "command-row", dataset: { command: c.id, state: c.state } },
          h("td", {}, c.id), h("td", {}, commandText(c)), h("td", {}, c.operator),
          h("td", { className: "command-state" }, c.state === "refused" && c.result_name ? `refused (${c.result_name})` : c.state),
          h("td", { className: "command-answer" }, c.answer || "–"), h("td", {}, c.queued),
          h("td", {}, c.delivered || "–"), h("td", {}, c.replied || "–"))))
    : h("p", { className: "muted" }, "No commands sent."));
  if (d.track.length !== state.points) { state.points = d.track.length; drawTrack($("map"), d.track, state.me.map); }
  $("audio-note").textContent = d.audio.chunks ? `${d.audio.seconds} s received in ${d.audio.chunks} chunks` +
    (d.audio.pre_trigger_seconds ? `, of which the first ${d.audio.pre_trigger_seconds} s are PRE-TRIGGER (recorded before the alarm was raised)` : "") : "no audio yet";
  if (d.audio.chunks !== state.audioChunks) { state.audioChunks = d.audio.chunks; loadAudio(false); }
  $("timeline").replaceChildren(table(["Seq", "Type", "Device time", "Received", "Via", "Location", "Audio"],
    d.timeline.map((f) => h("tr", {}, h("td", {}, f.seq), h("td", {}, f.duress ? `${f.type} (duress)` : f.type),
      h("td", {}, f.time || "–"), h("td", {}, f.received), h("td", {}, f.via), h("td", {}, f.location ? "yes" : ""),
      h("td", {}, f.audio_s ? `${f.audio_s} s${f.pre_trigger ? " (pre-trigger)" : ""}` : "")))));
}

function commandText(c) {
  if (c.op === "more-audio") return `more-audio ${c.args.s} s`;
  if (c.op === "ask") return `ask ${["", "can-you-talk", "are-you-safe"][c.args.q] || `question ${c.args.q}`}`;
  return c.op;
}

function trustText(t) {
  const parts = [t.insecure_tls ? "INSECURE-TLS: it does not authenticate the centre (bench setting)" : "authenticates the centre"];
  if (t.unauthenticated_answers) parts.push(`${t.unauthenticated_answers} answers it could not authenticate`);
  return parts.join("; ");
}

async function command(body) {
  try {
    const c = await api.post(`/api/alerts/${state.detail.id}/commands`, body);
    $("command-result").textContent = `command ${c.id} (${commandText(c)}): ${c.state}`;
    refreshDetail();
  } catch (e) { if (!failed(e)) $("command-result").textContent = e.message; }
}

// The audio received so far; when more arrives the player keeps its place
// (while it plays, the new audio is loaded when it reaches the end).
function loadAudio(resume) {
  const audio = $("audio"); if (!audio || !state.audioChunks) return;
  const playing = !audio.paused && !audio.ended;
  if (playing && !resume) { state.audioPending = true; return; }
  state.audioPending = false;
  const pos = audio.currentTime || 0, started = audio.dataset.started === "1";
  audio.src = `/api/alerts/${state.detail.id}/audio.wav?chunks=${state.audioChunks}`;
  if (started) {
    audio.addEventListener("loadedmetadata", () => { audio.currentTime = Math.min(pos, audio.duration || pos); if (resume) audio.play(); }, { once: true });
    audio.load();
  }
}
document.addEventListener("play", (e) => { if (e.target.id === "audio") e.target.dataset.started = "1"; }, true);

async function act(what, body) {
  const id = state.detail.id;
  try {
    const r = await api.post(`/api/alerts/${id}/${what}`, body);
    $("action-result").textContent = what === "export" ? `exported to ${r.path} (manifest ${r.manifest_sha256.slice(0, 16)}…)`
                                                       : `${r.id}: ${r.state}`;
    refreshQueue(); refreshDetail();
  } catch (e) { if (!failed(e)) $("action-result").textContent = e.message; }
}

// ---- statistics ----------------------------------------------------------------
async function renderStats() {
  const month = h("input", { id: "month", type: "month", value: new Date().toISOString().slice(0, 7) });
  const out = h("div", { id: "stats" });
  const load = async () => {
    try {
      const s = await api.get(`/api/stats?month=${encodeURIComponent(month.value)}`);
      out.replaceChildren(facts([["Alerts", s.alerts], ["Duress", s.duress], ["Acknowledged", s.acknowledged],
        ["Within 10 s", `${s.within_10s} (${s.within_10s_pct ?? "–"} %; target ${s.target_10s_pct} %: ${s.meets_10s ? "met" : "NOT met"})`],
        ["Within 40 s", `${s.within_40s} (${s.within_40s_pct ?? "–"} %; target ${s.target_40s_pct} %: ${s.meets_40s ? "met" : "NOT met"})`],
        ["Median", s.median_s !== null ? `${s.median_s} s` : "–"], ["95th percentile", s.p95_s !== null ? `${s.p95_s} s` : "–"],
        ["Never acknowledged", s.unacknowledged]]));
    } catch (e) { if (!failed(e)) out.replaceChildren(h("p", { className: "error" }, e.message)); }
  };
  month.addEventListener("change", load);
  $("view").replaceChildren(h("h1", {}, "Statistics (BS 8484)"), h("div", { className: "actions" }, "Month ", month),
                            h("div", { className: "panel" }, out));
  load();
}

// ---- audit ------------------------------------------------------------------------
async function renderAudit(full = true) {
  if (full || !$("audit-log")) {
    const device = h("input", { id: "ledger-device", placeholder: "device, e.g. SOTTO-42" });
    const alertId = h("input", { id: "hold-alert", placeholder: "alert, e.g. A12", size: 8 });
    const reason = h("input", { id: "hold-reason", placeholder: "reason", size: 30 });
    const days = h("input", { id: "purge-days", type: "number", value: 30, min: 1, style: "width:5rem" });
    const result = h("p", { id: "audit-result", className: "muted" });
    const show = (r) => result.textContent = r;
    const tryShow = (p) => p.then(show, (e) => { if (!failed(e)) show(e.message); });
    $("view").replaceChildren(h("h1", {}, "Audit"),
      h("div", { className: "actions" },
        h("button", { id: "verify", onclick: () => tryShow(api.get("/api/audit/verify").then((c) =>
          c.ok ? `chain intact: ${c.entries} entries, head ${c.head_hash}` : `TAMPERED: ${c.problems.map((p) => p.detail).join("; ")}`)) }, "Verify the chain"),
        device, h("button", { id: "ledger", onclick: () => renderLedger(device.value) }, "Access ledger"),
        alertId, reason, h("button", { id: "hold", onclick: () => tryShow(api.post(`/api/alerts/${alertId.value}/hold`, { reason: reason.value }).then((r) => `${r.id} held`)) }, "Hold"),
        h("button", { id: "release", onclick: () => tryShow(api.post(`/api/alerts/${alertId.value}/hold`, { release: true }).then((r) => `${r.id} released`)) }, "Release"),
        "Purge older than ", days, " days",
        h("button", { id: "purge-dry", onclick: () => tryShow(api.post("/api/purge", { older_than_days: Number(days.value), dry_run: true }).then((r) => `would purge ${r.alerts.length} alerts (${r.locations} locations, ${r.audio_seconds} s audio); kept: ${r.kept.map((k) => `${k.alert} (${k.why})`).join(", ") || "none"}`)) }, "Dry run")),
      result, h("div", { id: "ledger-out" }), h("h2", {}, "Newest entries"), h("div", { id: "audit-log" }));
  }
  try {
    const log = await api.get("/api/audit?limit=200");
    $("audit-log").replaceChildren(table(["Time (UTC)", "Operator", "Role", "Action", "Alert", "Detail"],
      log.entries.map((e) => h("tr", { className: "audit-row", dataset: { action: e.action } },
        h("td", {}, e.at_utc), h("td", { className: "audit-operator" }, e.operator), h("td", {}, e.role || "–"),
        h("td", {}, e.action), h("td", {}, e.alert || "–"), h("td", {}, e.detail || "")))));
  } catch (e) { failed(e); }
}

async function renderLedger(device) {
  try {
    const l = await api.get(`/api/ledger/${encodeURIComponent(device)}`);
    $("ledger-out").replaceChildren(h("h2", {}, `Who saw ${l.device}'s location or audio`),
      l.accesses.length ? table(["Time", "Operator", "Role", "Action", "Alert", "What"],
        l.accesses.map((a) => h("tr", {}, [a.at, a.operator, a.role, a.action, a.alert, a.detail].map((c) => h("td", {}, c || "–")))))
        : h("p", { className: "muted" }, "Nobody."));
  } catch (e) { if (!failed(e)) $("ledger-out").replaceChildren(h("p", { className: "error" }, e.message)); }
}

// ---- administration -------------------------------------------------------------
async function renderOperators() {
  const name = h("input", { id: "op-name", placeholder: "name" });
  const role = h("select", { id: "op-role" }, ["operator", "supervisor", "auditor", "admin"].map((r) => h("option", {}, r)));
  const pw = h("input", { id: "op-password", type: "password", placeholder: "password (10+ characters)" });
  const result = h("p", { id: "op-result", className: "muted" });
  const run = (p) => p.then(() => renderOperators(), (e) => { if (!failed(e)) result.textContent = e.message; });
  let list;
  try { list = await api.get("/api/operators"); } catch (e) { failed(e); return; }
  $("view").replaceChildren(h("h1", {}, "Operators"),
    table(["Name", "Role", "State", "Last login", "Created by", ""], list.operators.map((o) =>
      h("tr", {}, h("td", {}, o.name), h("td", {}, o.role),
        h("td", {}, o.disabled ? "disabled" : o.locked_until ? `locked until ${o.locked_until}` : "active"),
        h("td", {}, o.last_login || "never"), h("td", {}, o.created_by),
        h("td", {}, !o.disabled && h("button", { onclick: () => run(api.post(`/api/operators/${encodeURIComponent(o.name)}/disable`)) }, "Disable"))))),
    h("h2", {}, "Add an account"),
    h("div", { className: "actions" }, name, role, pw,
      h("button", { id: "op-add", onclick: () => run(api.post("/api/operators", { name: name.value, role: role.value, password: pw.value })) }, "Add")),
    result);
}

async function renderDevices() {
  let list;
  try { list = await api.get("/api/devices"); } catch (e) { failed(e); return; }
  $("view").replaceChildren(h("h1", {}, "Devices"),
    table(["Device", "Officer", "Key", "Registered", "Last heard", "Battery", "Heartbeat", "Frames", "Trust", "Firmware", "Update"],
      list.devices.map((d) => h("tr", { className: "device-row", dataset: { device: d.device } }, [d.device, d.officer, d.status, d.registered,
        d.last_seen ? `${dur(d.last_seen_s)} ago (${d.last_via})` : "never", d.battery !== null ? `${d.battery} %` : null,
        d.heartbeat_s ? `every ${dur(d.heartbeat_s)}` : null, d.frames,
        [d.insecure_tls && "INSECURE-TLS", d.unauthenticated_answers && `unauth ${d.unauthenticated_answers}`].filter(Boolean).join(", ") || "ok",
        [d.firmware, d.pending && `staged ${d.pending}`, d.assigned_release && d.assigned_release !== d.firmware && `assigned ${d.assigned_release}`,
         d.cohort && `cohort ${d.cohort}`].filter(Boolean).join(", ") || null,
        d.update ? `${d.update}${d.update_error ? `: ${d.update_error}` : ""}` : null,
      ].map((c) => h("td", {}, c ?? "–"))))));
}

start();
