// pgwarden's live web view: polls this agent's /ui/state every second and /cluster/events every
// few seconds, and redraws. Read-only; everything comes from the agent that served the page.
// The DOM is built with textContent only: nothing the cluster reports is ever parsed as HTML.
"use strict";

const STATE_EVERY_MS = 1000;
const EVENTS_EVERY_MS = 4000;
const STALE_AFTER_MS = 3500;
const EVENTS_SHOWN = 40;
const REQUEST_TIMEOUT_MS = 4000; // a request the agent does not answer must not stall the page

let lastState = null;
const seen = new Map(); // every member this page has shown: name -> {member, at} (a lost one stays, greyed)
let lastOkAt = 0;
let lastError = "";

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function replaceChildren(parent, children) {
  parent.replaceChildren(...children);
}

function bytes(n) {
  if (n === null || n === undefined) return "unknown";
  if (n === 0) return "0 B";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return (unit === 0 ? value.toFixed(0) : value.toFixed(1)) + " " + units[unit];
}

function clock(epochSeconds) {
  if (!epochSeconds) return "";
  const d = new Date(epochSeconds * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
}

function day(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
}

async function getJSON(path) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(path, { cache: "no-store", headers: { Accept: "application/json" }, signal: controller.signal });
    if (!response.ok) throw new Error(path + " answered HTTP " + response.status);
    return await response.json();
  } catch (err) {
    throw err.name === "AbortError" ? new Error(path + " did not answer within " + REQUEST_TIMEOUT_MS / 1000 + " s") : err;
  } finally {
    clearTimeout(timer);
  }
}

function roleClass(member) {
  // /cluster's roles are Patroni's: leader, standby_leader, sync_standby, quorum_standby, replica.
  if (member.role === "leader" || member.role === "primary" || member.role === "standby_leader") return "primary";
  if (member.state !== "running" && member.state !== "streaming") return member.state === "crashed" ? "crashed" : "down";
  return member.role === "sync_standby" || member.role === "quorum_standby" ? "sync" : "replica";
}

function roleLabel(member, state) {
  if (member.role === "sync_standby") return "sync standby";
  if (member.role === "quorum_standby") return "quorum standby";
  if (member.role === "replica") return state.leader ? "standby" : "standby (no leader)";
  if (member.role === "leader") return "primary";
  return member.role.replace("_", " ");
}

function badge(text, kind) {
  return el("span", "badge " + (kind || ""), text);
}

function renderBadges(state) {
  const badges = [];
  if (state.pause) badges.push(badge("paused: no automatic failover", "warn"));
  if (!state.leader) badges.push(badge("no leader", "bad"));
  if (state.synchronous_mode && state.synchronous_mode !== "off") {
    badges.push(badge("synchronous " + state.synchronous_mode, "info"));
  }
  if (state.failsafe_active) badges.push(badge("failsafe active: etcd unreachable", "bad"));
  else if (state.failsafe_mode) badges.push(badge("failsafe mode on", "info"));
  if (state.dcs_ok === false) badges.push(badge("etcd unreachable from " + state.served_by, "bad"));
  if (state.switchover) badges.push(badge("switchover pending", "warn"));
  replaceChildren(document.getElementById("badges"), badges);
}

function renderSummary(state) {
  const parts = [];
  const leader = state.members.find((m) => m.name === state.leader);
  if (leader) {
    const line = el("p", "lead");
    line.append(el("strong", null, leader.name), document.createTextNode(" leads"));
    if (leader.timeline !== null) line.append(document.createTextNode(" on timeline " + leader.timeline));
    line.append(document.createTextNode(" · " + state.members.length + " members in etcd"));
    parts.push(line);
  } else {
    parts.push(el("p", "lead bad", "No member holds the leader key: no primary takes writes."));
  }
  const sync = state.synchronous;
  if (state.synchronous_mode && state.synchronous_mode !== "off") {
    const names = sync && sync.length ? sync.join(", ") : "nobody";
    parts.push(el("p", null, "Synchronous claim: " + names + " hold every acknowledged commit."));
  }
  if (state.switchover) {
    const s = state.switchover;
    const kind = s.failover ? "Failover" : "Switchover";
    const when = s.scheduled_at ? " at " + day(s.scheduled_at) : " now";
    parts.push(el("p", "warn", kind + " from " + (s.leader || "nobody") + " to " + (s.candidate || "the best standby") + when + "."));
  }
  replaceChildren(document.getElementById("summary"), parts);
}

function fact(label, value) {
  const row = el("div", "fact");
  row.append(el("span", "label", label), el("span", "value", value));
  return row;
}

function memberCard(member, state) {
  const card = el("article", "member " + roleClass(member));
  card.dataset.member = member.name;
  card.dataset.role = member.role;
  card.dataset.state = member.state;
  card.dataset.timeline = member.timeline === null ? "" : String(member.timeline);
  const head = el("div", "member-head");
  head.append(el("h3", null, member.name), el("span", "role", roleLabel(member, state)));
  card.append(head, el("div", "address", member.host + ":" + member.port));
  const facts = el("div", "facts");
  facts.append(fact("state", member.state));
  facts.append(fact("timeline", member.timeline === null ? "?" : member.timeline));
  facts.append(fact("WAL", member.lsn || "?"));
  facts.append(fact("lag", member.name === state.leader ? "leader" : bytes(member.lag)));
  card.append(facts);
  if (member.progress) {
    const match = /(\d+)%/.exec(member.progress);
    const bar = el("div", "progress");
    const fill = el("div", "fill");
    fill.style.width = (match ? match[1] : 0) + "%";
    bar.append(fill);
    card.append(bar, el("p", "progress-text", member.progress));
  }
  const reason = el("p", "reason", member.reason || "no decision published yet");
  reason.title = member.reason_code || "";
  card.append(reason);
  const flags = [];
  if (member.pending_restart) flags.push(badge("restart pending", "warn"));
  if (member.config_errors && member.config_errors.length) flags.push(badge(member.config_errors.length + " config errors", "bad"));
  const tags = member.tags || {};
  if (tags.nofailover) flags.push(badge("nofailover", "info"));
  if (tags.noloadbalance) flags.push(badge("noloadbalance", "info"));
  if (tags.nosync) flags.push(badge("nosync", "info"));
  if (flags.length) {
    const row = el("div", "flags");
    row.append(...flags);
    card.append(row);
  }
  return card;
}

function goneCard(name, since) {
  const card = el("article", "member gone");
  card.dataset.member = name;
  card.dataset.role = "gone";
  card.dataset.state = "gone";
  const head = el("div", "member-head");
  head.append(el("h3", null, name), el("span", "role", "gone"));
  card.append(head);
  card.append(el("p", "reason", "No member key in etcd since " + clock(since / 1000) + ": its agent stopped, or cannot reach etcd."));
  return card;
}

function renderMembers(state) {
  const now = Date.now();
  for (const m of state.members) seen.set(m.name, now);
  const members = [...state.members].sort((a, b) => {
    const la = a.name === state.leader ? 0 : 1;
    const lb = b.name === state.leader ? 0 : 1;
    return la - lb || a.name.localeCompare(b.name);
  });
  const present = new Set(members.map((m) => m.name));
  const gone = [...seen.entries()].filter(([name]) => !present.has(name)).sort();
  const container = document.getElementById("members");
  if (!members.length && !gone.length) {
    replaceChildren(container, [el("p", "note", "No member key in etcd for this cluster.")]);
    return;
  }
  replaceChildren(container, [...members.map((m) => memberCard(m, state)), ...gone.map(([name, at]) => goneCard(name, at))]);
}

function renderHistory(state) {
  const items = [...(state.history || [])].reverse().map((h) => {
    const item = el("li");
    const head = el("div", "line");
    head.append(el("span", "when", day(h.timestamp)), el("strong", null, "TL " + h.timeline), el("span", null, h.new_leader));
    item.append(head, el("div", "what", h.reason + (h.event && h.event !== "promotion" ? " (" + h.event + ")" : "")));
    return item;
  });
  if (!items.length) items.push(el("li", "note", "No promotion yet: the cluster is on its first timeline."));
  replaceChildren(document.getElementById("history"), items);
}

function renderState(state) {
  lastState = state;
  document.title = "pgwarden · " + state.cluster + (state.leader ? " · " + state.leader : " · no leader");
  document.body.dataset.leader = state.leader || "";
  document.body.dataset.updated = String(Date.now()); // when this state was drawn (tests read it)
  document.getElementById("cluster").textContent = state.cluster;
  document.getElementById("served-by").textContent = state.served_by;
  renderBadges(state);
  renderSummary(state);
  renderMembers(state);
  renderHistory(state);
}

function renderEvents(doc) {
  const runs = [];
  for (const [member, events] of Object.entries(doc.members || {})) {
    for (const e of events) runs.push({ member, ...e });
  }
  runs.sort((a, b) => b.timestamp - a.timestamp || a.member.localeCompare(b.member));
  const items = runs.slice(0, EVENTS_SHOWN).map((r) => {
    const item = el("li");
    const head = el("div", "line");
    const span = r.decisions > 1 ? clock(r.timestamp) + "–" + clock(r.last_timestamp) : clock(r.timestamp);
    head.append(el("span", "when", span), el("strong", null, r.member), el("code", "code", r.reason_code));
    if (r.decisions > 1) head.append(el("span", "count", "×" + r.decisions));
    item.append(head, el("div", "what", r.message));
    return item;
  });
  if (!items.length) items.push(el("li", "note", "No decision recorded yet."));
  replaceChildren(document.getElementById("events"), items);
  const missing = Object.entries(doc.unreachable || {});
  document.getElementById("events-note").textContent = missing.length
    ? "Not answering: " + missing.map(([name, why]) => name + " (" + why + ")").join("; ")
    : "";
}

function renderFreshness() {
  const box = document.getElementById("freshness");
  const text = document.getElementById("freshness-text");
  const age = Date.now() - lastOkAt;
  if (lastOkAt && age < STALE_AFTER_MS) {
    box.className = "freshness live";
    text.textContent = "live · " + clock(lastOkAt / 1000);
  } else {
    box.className = "freshness stale";
    text.textContent = lastOkAt ? "stale since " + clock(lastOkAt / 1000) + (lastError ? ": " + lastError : "") : lastError || "connecting…";
  }
}

async function pollState() {
  try {
    renderState(await getJSON("/ui/state"));
    lastOkAt = Date.now();
    lastError = "";
  } catch (err) {
    lastError = err.message;
  } finally {
    renderFreshness();
    setTimeout(pollState, STATE_EVERY_MS);
  }
}

async function pollEvents() {
  try {
    renderEvents(await getJSON("/cluster/events"));
  } catch (err) {
    document.getElementById("events-note").textContent = "Decisions unavailable: " + err.message;
  } finally {
    setTimeout(pollEvents, EVENTS_EVERY_MS);
  }
}

pollState();
pollEvents();
setInterval(renderFreshness, 1000);
