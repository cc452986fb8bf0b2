// The supervisors' dashboard: every figure comes from the API with the signed-in token.
// Text from the API is set with textContent only, never parsed as HTML.
"use strict";

const TOKEN_KEY = "closeloop.token";
const OPEN_STATES = ["received", "triaged", "dispatched", "accepted", "in_progress"];
const RATES = [
  ["response", "response_rate"],
  ["closure", "closure_rate"],
  ["on time", "on_time_closure_rate"],
  ["solved", "resolution_rate"],
  ["satisfied", "satisfaction_rate"],
];
const charts = {};

const $ = (selector) => document.querySelector(selector);

class SignedOut extends Error {}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const answer = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  if (answer.status === 401 || answer.status === 403) {
    const problem = await answer.json().catch(() => ({}));
    throw new SignedOut(problem.detail || `the API answered ${answer.status}`);
  }
  if (!answer.ok) throw new Error(`${path}: the API answered ${answer.status}`);
  return answer.json();
}

function percent(rate) {
  // 0/0 is "no data": a dash, never 0%.
  return rate.value === null ? "—" : `${Math.round(rate.value * 100)}%`;
}

function share(rate) {
  return `${percent(rate)} (${rate.numerator}/${rate.denominator})`;
}

function duration(seconds) {
  if (seconds === null) return "—";
  const minutes = Math.round(seconds / 60);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  return days ? `${days}d ${hours}h` : `${hours}h ${String(minutes % 60).padStart(2, "0")}m`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function cell(row, text, attributes = {}) {
  const td = document.createElement("td");
  td.textContent = text;
  for (const [name, value] of Object.entries(attributes)) td.setAttribute(name, value);
  row.appendChild(td);
  return td;
}

function departmentName(key) {
  return key === null ? "(not routed yet)" : key;
}

function tile(label, value, detail, field) {
  const box = document.createElement("div");
  box.className = "tile";
  box.dataset.figure = field;
  for (const [cls, text] of [["label", label], ["value", value], ["detail", detail]]) {
    const part = document.createElement("div");
    part.className = cls;
    part.textContent = text;
    box.appendChild(part);
  }
  return box;
}

function showTotals(total) {
  const tiles = [
    tile("received", String(total.received), `duplicates merged: ${total.merged}`, "received"),
    ...RATES.map(([label, field]) =>
      tile(`${label} rate`, percent(total[field]), `${total[field].numerator} of ${total[field].denominator}`, field)),
    tile("median close", duration(total.time_to_close.median_seconds),
      `p90 ${duration(total.time_to_close.p90_seconds)}`, "time_to_close"),
    tile("backlog", String(total.backlog), "open at the window's end", "backlog"),
    tile("overdue", String(total.overdue), "of the backlog", "overdue"),
  ];
  $("#totals").replaceChildren(...tiles);
}

function showDepartments(report) {
  const rows = report.groups.map((group) => {
    const tr = document.createElement("tr");
    tr.dataset.key = group.key === null ? "" : group.key;
    cell(tr, departmentName(group.key));
    for (const field of ["received", "merged", "closed"]) cell(tr, String(group[field]), { "data-field": field });
    for (const [, field] of RATES) cell(tr, share(group[field]), { "data-field": field });
    cell(tr, duration(group.time_to_close.median_seconds), { "data-field": "median_close" });
    cell(tr, duration(group.time_to_close.p90_seconds), { "data-field": "p90_close" });
    cell(tr, String(group.backlog), { "data-field": "backlog" });
    cell(tr, String(group.overdue), { "data-field": "overdue", class: group.overdue ? "late" : "" });
    return tr;
  });
  $("#departments tbody").replaceChildren(...rows);
  const colours = ["#1f6feb", "#2e7d32", "#f9a825", "#8e24aa", "#00897b"];
  draw("chart-departments", {
    type: "bar",
    data: {
      labels: report.groups.map((group) => departmentName(group.key)),
      datasets: RATES.map(([label, field], index) => ({
        label: `${label} rate`,
        backgroundColor: colours[index],
        // No data stays a gap in the chart, not a bar at zero.
        data: report.groups.map((group) => (group[field].value === null ? null : group[field].value * 100)),
      })),
    },
    options: {
      maintainAspectRatio: false,
      animation: false,
      scales: { y: { min: 0, max: 100, ticks: { callback: (value) => `${value}%` } } },
    },
  });
}

function showTrend(report) {
  draw("chart-trend", {
    type: "line",
    data: {
      labels: report.groups.map((group) => group.key),
      datasets: [
        { label: "received", data: report.groups.map((g) => g.received), borderColor: "#1f6feb", backgroundColor: "#1f6feb" },
        { label: "closed (of those received that day)", data: report.groups.map((g) => g.closed), borderColor: "#2e7d32", backgroundColor: "#2e7d32" },
        { label: "backlog at the day's end", data: report.groups.map((g) => g.backlog), borderColor: "#f9a825", backgroundColor: "#f9a825" },
        { label: "overdue at the day's end", data: report.groups.map((g) => g.overdue), borderColor: "#c62828", backgroundColor: "#c62828" },
      ],
    },
    options: { maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true } } },
  });
}

function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart(document.getElementById(id), config);
}

function showOverdue(page) {
  const rows = page.items.map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.caseId = item.id;
    cell(tr, when(item.received_at));
    cell(tr, item.category);
    cell(tr, item.district || "—");
    cell(tr, item.lead_department || "—");
    cell(tr, item.state);
    cell(tr, when(item.resolve_due_at), { class: "late" });
    tr.addEventListener("click", () => showTimeline(item.id, tr));
    return tr;
  });
  $("#overdue tbody").replaceChildren(...rows);
  $("#overdue-count").textContent = `(${page.items.length}${page.next_cursor ? "+" : ""})`;
}

async function showTimeline(caseId, row) {
  document.querySelectorAll("#overdue tr.chosen").forEach((tr) => tr.classList.remove("chosen"));
  row.classList.add("chosen");
  const found = await api(`/v1/cases/${encodeURIComponent(caseId)}`);
  $("#timeline-case").textContent = `${found.title} · ${found.state}`;
  const items = found.timeline.map((event) => {
    const li = document.createElement("li");
    const at = document.createElement("span");
    at.className = "when";
    at.textContent = `${when(event.at)} · `;
    li.appendChild(at);
    const move = event.to_state ? ` → ${event.to_state}` : "";
    li.appendChild(document.createTextNode(`${event.action}${move} (${event.actor.kind}: ${event.actor.id})`));
    return li;
  });
  $("#timeline").replaceChildren(...items);
  $("#timeline-panel").hidden = false;
}

function showDead(page) {
  const rows = page.items.map((delivery) => {
    const tr = document.createElement("tr");
    tr.dataset.deliveryId = delivery.id;
    cell(tr, delivery.department);
    cell(tr, delivery.event_type);
    cell(tr, delivery.case_id);
    cell(tr, String(delivery.attempts));
    cell(tr, delivery.last_status === null ? "—" : String(delivery.last_status));
    cell(tr, delivery.last_error || "");
    return tr;
  });
  $("#dead tbody").replaceChildren(...rows);
  $("#dead-count").textContent = `(${page.items.length})`;
}

async function load() {
  const since = $("#since").value;
  document.body.dataset.state = "loading";
  try {
    const open = OPEN_STATES.map((state) => `state=${state}`).join("&");
    const [departments, days, overdue, dead] = await Promise.all([
      api(`/v1/metrics?by=department&since=${since}`),
      api(`/v1/metrics?by=day&since=${since}`),
      api(`/v1/cases?overdue=true&${open}&limit=100`),
      api("/v1/deliveries?state=dead&limit=100"),
    ]);
    $("#window").textContent =
      `From ${when(departments.since)} to ${when(departments.until)}; days in ${departments.time_zone}.`;
    showTotals(departments.total);
    showDepartments(departments);
    showTrend(days);
    showOverdue(overdue);
    showDead(dead);
    document.body.dataset.state = "ready";
  } catch (error) {
    if (error instanceof SignedOut) return signOut(error.message);
    document.body.dataset.state = "error";
    $("#window").textContent = `Could not load the figures: ${error.message}`;
  }
}

function signedIn() {
  $("#sign-in-panel").hidden = true;
  $("#board").hidden = false;
  $("#controls").hidden = false;
  load();
}

function signOut(why = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#board").hidden = true;
  $("#controls").hidden = true;
  $("#sign-in-panel").hidden = false;
  $("#sign-in-error").textContent = why;
  document.body.dataset.state = "signed-out";
}

document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    signedIn();
  });
  $("#sign-out").addEventListener("click", () => signOut());
  $("#refresh").addEventListener("click", load);
  $("#since").addEventListener("change", load);
  if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
  else signOut();
});
