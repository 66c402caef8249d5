// The driver tablet: next stop first and large, the rest of the route below, one tap per event.
import { me, stops as fetchStops } from "./api.js";
import { DriverSocket } from "./socket.js";
import { decorateNext, riderName, startDate } from "./doorstep.js";
import { lang, setLang, translator, applyTexts } from "./i18n.js";

const TOKEN_KEY = "okuma.driver.token";
const LOCAL_KEY = "okuma.driver.local";

const TEXTS = {
  title: { ja: "運転士タブレット", en: "Driver tablet" },
  connecting: { ja: "接続中…", en: "Connecting…" },
  online: { ja: "オンライン", en: "Online" },
  offline: { ja: "オフライン", en: "Offline" },
  offline_hint: { ja: "操作は端末に保存され、再接続時に送信されます。", en: "Your taps are saved on the tablet and sent when the link is back." },
  queued: { ja: "未送信 {n} 件", en: "{n} not sent" },
  next_stop: { ja: "次の停留所", en: "Next stop" },
  rest: { ja: "この後の経路", en: "Rest of the route" },
  break_start: { ja: "休憩開始", en: "Start break" },
  break_end: { ja: "休憩終了", en: "End break" },
  on_break: { ja: "休憩中", en: "On break" },
  login_title: { ja: "運転士トークンを入力してください", en: "Enter the driver token" },
  token: { ja: "トークン", en: "Token" },
  login: { ja: "開始", en: "Start" },
  handover_title: { ja: "荷物の受け渡し", en: "Parcel handover" },
  handover_code: { ja: "受取人の確認コード", en: "Recipient's code" },
  cancel: { ja: "やめる", en: "Cancel" },
  send: { ja: "送信", en: "Send" },
  arrived: { ja: "到着", en: "Arrived" },
  arrived_done: { ja: "到着済み", en: "Arrived" },
  boarded: { ja: "乗車", en: "Boarded" },
  no_show: { ja: "不在", en: "No-show" },
  dropped_off: { ja: "降車", en: "Dropped off" },
  handover: { ja: "荷物受け渡し", en: "Hand over parcel" },
  parcel_pickup: { ja: "荷物積込", en: "Load parcel" },
  navigate: { ja: "ナビ開始", en: "Navigate" },
  planned: { ja: "予定", en: "Planned" },
  eta: { ja: "見込み", en: "Expected" },
  pickup: { ja: "乗車", en: "Board" },
  dropoff: { ja: "降車", en: "Alight" },
  persons: { ja: "{n}名", en: "{n} pax" },
  wheelchair: { ja: "車いす {n}", en: "Wheelchair {n}" },
  parcels: { ja: "荷物 {n}", en: "Parcels {n}" },
  no_show_in: { ja: "不在は {t} 後に押せます", en: "No-show possible in {t}" },
  no_show_after_arrival: { ja: "不在は到着後 {m} 分から", en: "No-show {m} min after arrival" },
  empty: { ja: "予定はありません。", en: "Nothing planned." },
  sent_wait: { ja: "送信待ち", en: "waiting to send" },
  done: { ja: "済", en: "done" },
  language: { ja: "English", en: "日本語" },
  changed: { ja: "経路が変わりました", en: "The route changed" },
  cancelled: { ja: "取り消し: {who}", en: "Cancelled: {who}" },
  rejected: { ja: "受け付けられません: {msg}", en: "Not accepted: {msg}" },
  late: { ja: "{m}分遅れ", en: "{m} min late" },
  fatal: { ja: "エラー: {msg}", en: "Error: {msg}" },
  grocery: { ja: "買い物便", en: "Grocery" },
  unknown_stop: { ja: "地点", en: "Point" },
  token_bad: { ja: "トークンが正しくありません。", en: "The token is not valid." },
  not_driver: { ja: "運転士のトークンではありません。", en: "This is not a driver token." },
  count: { ja: "人数", en: "People" },
  parcel_handed_over: { ja: "受け渡し", en: "Handed over" },
  parcel_picked_up: { ja: "積込", en: "Loaded" },
  wait_until: { ja: "ここで {t} まで待機", en: "Wait here until {t}" },
  arrive_from: { ja: "到着は {t} から押せます(乗車時間帯の{m}分前、または停留所の近くで)", en: "Arrival can be recorded from {t} ({m} min before the window, or near the stop)" },
  at_risk: { ja: "遅れ見込み", en: "Delay expected" },
  at_risk_notice: { ja: "{who} さんのお約束の時刻に遅れる見込みです", en: "Expected late for {who}'s promised time" },
  at_risk_cleared: { ja: "{who} さんの遅れ見込みは解消しました", en: "{who}: no longer expected late" },
  page_title: { ja: "運転士タブレット｜大熊町オンデマンド交通", en: "Driver tablet | Okuma on-demand transport" },
  clock: { ja: "時刻", en: "Time" },
};

const state = {
  lang: lang(), // i18n.js: the device's choice
  token: null,
  vehicleId: null,
  vehicleName: { ja: "", en: "" },
  stops: new Map(),
  visits: [],
  onBreak: false,
  noShowWaitS: 180,
  arrivalEarlyS: 900,     // from hello: 到着 that early before a pickup window needs the tablet near the stop
  arrivalNearM: 150,
  lastPos: null,          // the tablet's latest GPS fix {lat, lon}
  atRisk: new Set(),      // booking ids whose promise the server flagged at risk
  clockOffsetMs: 0,
  etas: new Map(),
  changed: new Set(),     // visit ids to highlight
  counts: new Map(),      // booking id -> boarded count chosen
  local: loadLocal(),     // optimistic marks: {"<booking>:arrived": iso, "<booking>:boarded": true, ...}
  socket: null,
  beeps: 0,
};

// ------------------------------------------------------------------------------ helpers

const tr = translator(TEXTS);
function t(key, vars = {}) { return tr(key, vars, state.lang); }

function $(id) { return document.getElementById(id); }

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

function loadLocal() {
  try { return JSON.parse(localStorage.getItem(LOCAL_KEY) || "{}"); } catch { return {}; }
}
function saveLocal() { localStorage.setItem(LOCAL_KEY, JSON.stringify(state.local)); }

function serverNow() { return new Date(Date.now() + state.clockOffsetMs); }

function hhmm(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleTimeString("ja-JP", { hour: "2-digit", minute: "2-digit", timeZone: "Asia/Tokyo" });
}

function stopOf(v) {
  const s = v.stop_id ? state.stops.get(v.stop_id) : null;
  return {
    // door-to-door: the address as told, not a bare point
    ja: v.stop_name_ja || (s && s.name_ja) || v.address || `${t("unknown_stop")} ${v.lat.toFixed(4)}, ${v.lon.toFixed(4)}`,
    en: v.stop_name_en || (s && s.name_en) || v.address || `${v.lat.toFixed(4)}, ${v.lon.toFixed(4)}`,
    kana: (s && s.name_kana) || "",
  };
}

/** Consecutive visits at the same place make one stop of the route. */
function groupStops(visits) {
  const groups = [];
  for (const v of visits) {
    const key = v.stop_id || `${v.lat.toFixed(5)},${v.lon.toFixed(5)}`;
    const last = groups[groups.length - 1];
    if (last && last.key === key) last.visits.push(v);
    else groups.push({ key, visits: [v], lat: v.lat, lon: v.lon, stop_id: v.stop_id });
  }
  return groups;
}

function arrivedAt(v) {
  return v.arrived_at || (v.kind === "pickup" && state.local[`${v.booking_id}:arrived`]) ||
    (v.kind === "dropoff" && state.local[`${v.booking_id}:arrived_drop`]) || null;
}

function distanceM(lat1, lon1, lat2, lon2) {
  const r = 6371008.8, rad = Math.PI / 180;
  const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 +
    Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * r * Math.asin(Math.sqrt(a));
}

/** When 到着 may be pressed for this stop (the server's rule), or null if it may be now. */
export function arrivalAllowedFrom(group, now = serverNow()) {
  const starts = group.visits.filter((v) => v.kind === "pickup" && !arrivedAt(v) && v.window_start)
    .map((v) => new Date(v.window_start).getTime());
  if (!starts.length) return null;
  const from = new Date(Math.min(...starts) - state.arrivalEarlyS * 1000);
  if (now >= from) return null;
  const p = state.lastPos;
  if (p && distanceM(p.lat, p.lon, group.lat, group.lon) <= state.arrivalNearM) return null;
  return from;
}

/** The no-show may be recorded from max(arrival, window start) + the wait (the server's clock). */
function noShowLeftS(v, arrived) {
  const from = Math.max(new Date(arrived).getTime(), v.window_start ? new Date(v.window_start).getTime() : 0);
  return Math.ceil(state.noShowWaitS - (serverNow().getTime() - from) / 1000);
}

function localDone(v) {
  return state.local[`${v.visit_id}:done`] || null;
}

export function navigationUrl(lat, lon) {
  // Google Maps directions: opens the Maps app on Android tablets, the web page elsewhere.
  return `https://www.google.com/maps/dir/?api=1&destination=${lat},${lon}&travelmode=driving`;
}

// ------------------------------------------------------------------------------ sound

let audio = null;
function ensureAudio() {
  if (audio) return audio;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return null;
  try { audio = new Ctx(); } catch { audio = null; }
  return audio;
}

function beep() {
  state.beeps += 1;
  document.body.dataset.beeps = String(state.beeps);
  const ctx = ensureAudio();
  if (!ctx) return;
  if (ctx.state === "suspended") ctx.resume().catch(() => {});
  const start = ctx.currentTime;
  for (const [i, freq] of [[0, 880], [1, 1175]]) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start + i * 0.22);
    gain.gain.exponentialRampToValueAtTime(0.4, start + i * 0.22 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + i * 0.22 + 0.2);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start + i * 0.22);
    osc.stop(start + i * 0.22 + 0.21);
  }
}

// ------------------------------------------------------------------------------ events

// Optimistic marks made by each queued event, so a rejection undoes exactly those.
const MARKS_KEY = "okuma.driver.marks";
function loadMarks() {
  try { return JSON.parse(localStorage.getItem(MARKS_KEY) || "{}"); } catch { return {}; }
}

function sendEvent(ev, keys = []) {
  const cid = state.socket.send(ev);
  const marks = loadMarks();
  marks[cid] = keys;
  localStorage.setItem(MARKS_KEY, JSON.stringify(marks));
  renderStatus(state.socket.state, state.socket.outbox.length);
}

function settleMarks(cid, rejected) {
  const marks = loadMarks();
  if (rejected) for (const k of marks[cid] || []) delete state.local[k];
  delete marks[cid];
  localStorage.setItem(MARKS_KEY, JSON.stringify(marks));
  saveLocal();
}

function onArrived(group) {
  const now = serverNow().toISOString();
  const ids = [];
  const keys = [];
  for (const v of group.visits) {
    if (arrivedAt(v)) continue;
    ids.push(v.booking_id);
    const key = `${v.booking_id}:${v.kind === "pickup" ? "arrived" : "arrived_drop"}`;
    state.local[key] = now;
    keys.push(key);
  }
  saveLocal();
  const ev = { type: "arrived", stop_id: group.stop_id || null, booking_ids: [...new Set(ids.length ? ids : group.visits.map((v) => v.booking_id))] };
  if (state.lastPos) { ev.lat = state.lastPos.lat; ev.lon = state.lastPos.lon; }
  sendEvent(ev, keys);
  render();
}

function markDone(v, what) {
  state.local[`${v.visit_id}:done`] = what;
  saveLocal();
  render();
  return [`${v.visit_id}:done`];
}

function doneEvent(v, what, ev) {
  sendEvent(ev, markDone(v, what));
}

function onBoarded(v) {
  const count = state.counts.get(v.booking_id) || v.party_size;
  doneEvent(v, "boarded", { type: "boarded", booking_id: v.booking_id, count });
}

function onNoShow(v) {
  doneEvent(v, "no_show", { type: "no_show", booking_id: v.booking_id });
}

function onDroppedOff(v) {
  doneEvent(v, "dropped_off", { type: "dropped_off", booking_id: v.booking_id });
}

function onParcelPickup(v) {
  doneEvent(v, "parcel_picked_up", { type: "parcel_picked_up", booking_id: v.booking_id });
}

function onHandover(v) {
  const dlg = $("handover");
  $("handover-who").textContent = `${v.passenger_name || ""} — ${t("parcels", { n: v.parcels })}`;
  const input = $("handover-code");
  input.value = "";
  const form = $("handover-form");
  form.onsubmit = (e) => {
    e.preventDefault();
    const code = input.value.trim();
    if (!code) { input.focus(); return; }
    dlg.close();
    doneEvent(v, "parcel_handed_over", { type: "parcel_handed_over", booking_id: v.booking_id, code });
  };
  $("handover-cancel").onclick = () => dlg.close();
  dlg.showModal();
  input.focus();
}

function onBreak() {
  state.onBreak = !state.onBreak;
  sendEvent({ type: state.onBreak ? "break_start" : "break_end" });
  render();
}

// ------------------------------------------------------------------------------ rendering

function renderStatus(conn, queued) {
  const box = $("conn");
  box.className = `conn conn-${conn}`;
  $("conn-label").textContent = t(conn);
  const q = $("queue-count");
  q.hidden = queued === 0;
  q.textContent = t("queued", { n: queued });
  $("offline-banner").hidden = conn !== "offline";
  document.body.dataset.conn = conn;
}

function riderDetails(v) {
  const bits = [el("span", { text: t("persons", { n: v.party_size }) })];
  if (v.wheelchairs > 0) {
    bits.push(el("span", { class: "wheelchair", text: `♿ ${t("wheelchair", { n: v.wheelchairs })}` }));
  }
  if (v.parcels > 0) bits.push(el("span", { class: "parcels", text: t("parcels", { n: v.parcels }) }));
  if (v.booking_kind === "grocery") bits.push(el("span", { text: t("grocery") }));
  const eta = state.etas.get(`${v.booking_id}:${v.kind}`);
  if (eta && eta.late_s > 60) bits.push(el("span", { class: "wheelchair", text: t("late", { m: Math.round(eta.late_s / 60) }) }));
  if (state.atRisk.has(v.booking_id)) bits.push(el("span", { class: "wheelchair at-risk", text: t("at_risk") }));
  return el("div", { class: "details" }, bits);
}

function countStepper(v) {
  const out = el("output", { "aria-live": "polite" });
  const get = () => state.counts.get(v.booking_id) || v.party_size;
  out.textContent = String(get());
  const set = (n) => { state.counts.set(v.booking_id, Math.max(1, Math.min(50, n))); out.textContent = String(get()); };
  return el("span", { class: "count-input", role: "group", "aria-label": t("count") },
    el("button", { class: "btn btn-secondary", type: "button", "aria-label": "−1", onclick: () => set(get() - 1), text: "−" }),
    out,
    el("button", { class: "btn btn-secondary", type: "button", "aria-label": "+1", onclick: () => set(get() + 1), text: "+" }));
}

function riderRow(v, group) {
  const done = localDone(v);
  const arrived = arrivedAt(v);
  const actions = [];
  if (done) {
    actions.push(el("span", { class: "status-tag", text: `${t(done)} ${t("sent_wait")}` }));
  } else if (v.kind === "pickup" && v.booking_kind === "grocery") {
    actions.push(el("button", { class: "btn btn-parcel", type: "button", "data-action": "parcel_picked_up", onclick: () => onParcelPickup(v), text: t("parcel_pickup") }));
  } else if (v.kind === "pickup") {
    actions.push(countStepper(v));
    actions.push(el("button", { class: "btn btn-board", type: "button", "data-action": "boarded", onclick: () => onBoarded(v), text: t("boarded") }));
    const waitLeft = arrived ? noShowLeftS(v, arrived) : null;
    const canNoShow = waitLeft !== null && waitLeft <= 0;
    actions.push(el("button", {
      class: "btn btn-noshow", type: "button", "data-action": "no_show", disabled: !canNoShow,
      "aria-describedby": `wait-${v.visit_id}`, onclick: () => onNoShow(v), text: t("no_show"),
    }));
  } else if (v.handover_code_required) {
    actions.push(el("button", { class: "btn btn-parcel", type: "button", "data-action": "parcel_handed_over", onclick: () => onHandover(v), text: t("handover") }));
  } else {
    actions.push(el("button", { class: "btn btn-alight", type: "button", "data-action": "dropped_off", onclick: () => onDroppedOff(v), text: t("dropped_off") }));
  }
  let hint = null;
  if (!done && v.kind === "pickup" && v.booking_kind !== "grocery") {
    const arrivedIso = arrivedAt(v);
    let text;
    if (!arrivedIso) text = t("no_show_after_arrival", { m: Math.round(state.noShowWaitS / 60) });
    else {
      const left = noShowLeftS(v, arrivedIso);
      text = left > 0 ? t("no_show_in", { t: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` }) : "";
    }
    hint = el("div", { class: "wait-hint", id: `wait-${v.visit_id}`, text });
  }
  return el("li", {
    class: `rider${done ? " done" : ""}${state.changed.has(v.visit_id) ? " changed" : ""}`,
    "data-visit": v.visit_id, "data-booking": v.booking_id,
  },
  el("span", { class: `kind kind-${v.kind}`, text: t(v.kind) }),
  el("div", {}, el("div", { class: "who", text: riderName(v, state.lang) }), riderDetails(v), hint),
  el("div", { class: "actions" }, actions));
}

function renderNext(group) {
  const box = $("next");
  box.replaceChildren();
  if (!group) {
    box.append(el("p", { class: "empty", text: t("empty") }));
    box.classList.remove("changed");
    return;
  }
  const first = group.visits[0];
  const name = stopOf(first);
  const eta = state.etas.get(`${first.booking_id}:${first.kind}`);
  const allArrived = group.visits.every((v) => arrivedAt(v));
  const arriveFrom = allArrived ? null : arrivalAllowedFrom(group);
  const waitUntil = group.visits.map((v) => v.wait_until).find((w) => w);
  const changed = group.visits.some((v) => state.changed.has(v.visit_id));
  box.classList.toggle("changed", changed);
  box.append(
    el("p", { class: "stop-name", id: "next-stop-name", lang: state.lang === "ja" ? "ja" : "en", text: state.lang === "ja" ? name.ja : name.en }),
    el("p", { class: "stop-kana", lang: "ja", text: state.lang === "ja" ? name.kana : `${name.ja}${name.kana ? `（${name.kana}）` : ""}` }),
    el("div", { class: "stop-meta" },
      el("span", { class: "planned", text: `${t("planned")} ${hhmm(first.planned_at)}` }),
      eta ? el("span", { class: "eta", text: `${t("eta")} ${hhmm(eta.eta)}` }) : null,
      allArrived ? el("span", { class: "status-tag", text: t("arrived_done") }) : null),
    waitUntil ? el("p", { class: "wait-until", id: "wait-until", role: "status", text: t("wait_until", { t: hhmm(waitUntil) }) }) : null,
    arriveFrom ? el("p", { class: "wait-hint", id: "arrive-from", text: t("arrive_from", { t: hhmm(arriveFrom.toISOString()), m: Math.round(state.arrivalEarlyS / 60) }) }) : null,
    el("div", { class: "next-buttons" },
      el("button", { class: "btn btn-arrived btn-wide", type: "button", id: "btn-arrived", "data-action": "arrived", disabled: allArrived || Boolean(arriveFrom), "aria-describedby": arriveFrom ? "arrive-from" : null, onclick: () => onArrived(group), text: t("arrived") }),
      el("a", { class: "btn btn-secondary btn-wide", id: "btn-navigate", href: navigationUrl(group.lat, group.lon), target: "_blank", rel: "noopener", role: "button", style: "display:flex;align-items:center;justify-content:center;text-decoration:none", text: `${t("navigate")} ➔` })),
    el("ol", { class: "riders" }, group.visits.map((v) => riderRow(v, group))),
  );
}

function renderRest(groups) {
  const list = $("rest");
  list.replaceChildren();
  for (const g of groups) {
    const name = stopOf(g.visits[0]);
    const who = g.visits.map((v) => `${t(v.kind)} ${riderName(v, state.lang)} ${t("persons", { n: v.party_size })}${v.wheelchairs ? " ♿" : ""}${v.parcels ? ` ${t("parcels", { n: v.parcels })}` : ""}`).join(" / ");
    list.append(el("li", {
      class: `rest-item${g.visits.some((v) => state.changed.has(v.visit_id)) ? " changed" : ""}`,
      "data-stop": g.stop_id || g.key,
    },
    el("span", { class: "rest-time", text: hhmm(g.visits[0].planned_at) }),
    g.visits[0].wait_until ? el("span", { class: "rest-wait", text: t("wait_until", { t: hhmm(g.visits[0].wait_until) }) }) : null,
    el("span", { class: "rest-stop", text: state.lang === "ja" ? name.ja : name.en }),
    el("span", { class: "rest-who", text: who })));
  }
}

function visibleVisits() {
  // A visit done on the tablet but not yet confirmed by the server leaves the next stop only
  // when every visit of that stop is done; until then it stays, greyed, so the driver sees it.
  return state.visits;
}

function render() {
  applyTexts(document, t); // [data-t] texts, [data-t-label] names, the document's lang
  document.title = t("page_title");
  $("lang").textContent = t("language");
  $("lang").setAttribute("lang", state.lang === "ja" ? "en" : "ja");
  $("vehicle-name").textContent = state.lang === "ja" ? state.vehicleName.ja : state.vehicleName.en;
  $("break").textContent = state.onBreak ? t("break_end") : t("break_start");
  let groups = groupStops(visibleVisits());
  // the next stop is the first one with anything left to do on the tablet
  while (groups.length > 1 && groups[0].visits.every((v) => localDone(v))) groups = groups.slice(1);
  renderNext(groups[0]);
  decorateNext($("next"), groups, { lang: state.lang, position: state.lastPos, nameOf: (g) => stopOf(g.visits[0])[state.lang === "ja" ? "ja" : "en"] });
  renderRest(groups.slice(1));
  if (state.socket) renderStatus(state.socket.state, state.socket.outbox.length);
}

function tickClock() {
  $("clock").textContent = serverNow().toLocaleTimeString("ja-JP", { hour: "2-digit", minute: "2-digit", timeZone: "Asia/Tokyo" });
  // the no-show button becomes available as the wait runs out (updated in place: no re-render,
  // so focus and the change highlight stay)
  for (const row of document.querySelectorAll("li.rider[data-visit]")) {
    const v = state.visits.find((x) => x.visit_id === row.dataset.visit);
    const button = row.querySelector('[data-action="no_show"]');
    const hint = row.querySelector(".wait-hint");
    if (!v || !button || !hint) continue;
    const arrived = arrivedAt(v);
    if (!arrived) continue;
    const left = noShowLeftS(v, arrived);
    button.disabled = left > 0;
    hint.textContent = left > 0 ? t("no_show_in", { t: `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}` }) : "";
  }
}

// ------------------------------------------------------------------------------ messages

function setPlan(visits, { highlight, added = [], moved = [] }) {
  const before = new Map(state.visits.map((v) => [v.visit_id, v]));
  const changed = new Set();
  if (highlight) {
    for (const v of visits) {
      const old = before.get(v.visit_id);
      if (!old || added.includes(v.booking_id) || moved.includes(v.booking_id) || old.planned_at !== v.planned_at) {
        changed.add(v.visit_id);
      }
    }
  }
  // forget optimistic marks for visits the server no longer has (done or removed)
  const ids = new Set(visits.map((v) => v.visit_id));
  const bookings = new Set(visits.map((v) => v.booking_id));
  for (const k of Object.keys(state.local)) {
    const id = k.slice(0, k.lastIndexOf(":"));
    if (k.endsWith(":done") ? !ids.has(id) : !bookings.has(id)) delete state.local[k];
  }
  saveLocal();
  state.visits = visits;
  const removed = [...before.values()].filter((v) => !ids.has(v.visit_id) && !bookings.has(v.booking_id));
  return { changed, removed };
}

// The highlight stays long enough to be seen after a glance back from the road, then goes.
function highlight(changed) {
  state.changed = changed;
  clearTimeout(highlight.timer);
  if (changed.size) highlight.timer = setTimeout(() => { state.changed = new Set(); render(); }, 20000);
}

function notice(text) {
  const n = $("notice");
  n.textContent = text;
  n.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.hidden = true; }, 8000);
}

function fatal(err) {
  console.error(err);
  const f = $("fatal");
  f.textContent = t("fatal", { msg: err.message });
  f.hidden = false;
}

function onMessage(msg) {
  switch (msg.type) {
    case "hello":
      state.clockOffsetMs = new Date(msg.server_time) - Date.now();
      state.noShowWaitS = msg.no_show_wait_s;
      if (msg.arrival_early_s !== undefined) state.arrivalEarlyS = msg.arrival_early_s;
      if (msg.arrival_near_m !== undefined) state.arrivalNearM = msg.arrival_near_m;
      state.vehicleName = { ja: msg.vehicle_name_ja || msg.vehicle_id, en: msg.vehicle_name_en || msg.vehicle_id };
      break;
    case "snapshot": {
      const first = state.visits.length === 0 && !state.hadSnapshot;
      const { changed } = setPlan(msg.visits, { highlight: !first });
      state.hadSnapshot = true;
      state.onBreak = msg.on_break;
      highlight(changed);
      if (changed.size) beep();
      break;
    }
    case "delta": {
      const { changed, removed } = setPlan(msg.visits, { highlight: true, added: msg.added, moved: msg.moved });
      highlight(changed);
      const cancelled = removed.filter((v) => (msg.removed || []).includes(v.booking_id));
      if (cancelled.length) notice(t("cancelled", { who: [...new Set(cancelled.map((v) => v.passenger_name))].join("、") }));
      else if (changed.size) notice(t("changed"));
      if (changed.size || cancelled.length) beep();
      break;
    }
    case "eta":
      state.etas = new Map(msg.etas.map((e) => [`${e.booking_id}:${e.kind}`, e]));
      break;
    case "promise_at_risk":
    case "promise_cleared": {
      const v = state.visits.find((x) => x.booking_id === msg.booking_id);
      const who = (v && v.passenger_name) || "—";
      if (msg.type === "promise_at_risk") { state.atRisk.add(msg.booking_id); notice(t("at_risk_notice", { who })); }
      else { state.atRisk.delete(msg.booking_id); notice(t("at_risk_cleared", { who })); }
      break;
    }
    case "ack":
      // the server said no: drop that event's optimistic marks so its buttons come back
      settleMarks(msg.client_event_id, msg.result === "rejected");
      if (msg.result === "rejected") notice(t("rejected", { msg: state.lang === "ja" ? msg.message_ja : msg.message_en }));
      break;
    case "error":
      if (msg.code === "Unauthorised" || msg.code === "Forbidden") {
        localStorage.removeItem(TOKEN_KEY);
        showLogin(state.lang === "ja" ? msg.message_ja : msg.message_en);
        return;
      }
      notice(t("rejected", { msg: state.lang === "ja" ? msg.message_ja : msg.message_en }));
      if (msg.client_event_id && msg.code !== "InternalError") settleMarks(msg.client_event_id, true);
      break;
    default:
      throw new Error(`unhandled message type ${msg.type}`);
  }
  render();
}

// ------------------------------------------------------------------------------ start

function showLogin(error = "") {
  if (state.socket) state.socket.stop();
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = error;
  render();
}

async function start(token) {
  let account;
  try {
    account = await me(token);
  } catch (err) {
    if (err.status === 401 || err.status === 403) {
      localStorage.removeItem(TOKEN_KEY);
      showLogin(t("token_bad"));
      return;
    }
    // offline at start: keep the vehicle we knew
    account = JSON.parse(localStorage.getItem("okuma.driver.account") || "null");
    if (!account) { showLogin(String(err.message)); return; }
  }
  if (account.role !== "driver" || !account.vehicle_id) { showLogin(t("not_driver")); return; }
  localStorage.setItem(TOKEN_KEY, token);
  localStorage.setItem("okuma.driver.account", JSON.stringify(account));
  state.token = token;
  state.vehicleId = account.vehicle_id;
  state.vehicleName = { ja: account.vehicle_id, en: account.vehicle_id };
  try {
    for (const s of await fetchStops()) state.stops.set(s.id, s);
  } catch { /* names also come with each visit */ }
  $("login").hidden = true;
  $("main").hidden = false;
  state.socket = new DriverSocket({
    token, vehicleId: account.vehicle_id, onMessage, onFatal: fatal, now: serverNow,
    onStatus: (conn, queued) => renderStatus(conn, queued),
  });
  state.socket.start();
  if (navigator.geolocation) {
    let lastSent = 0;
    navigator.geolocation.watchPosition((p) => {
      state.lastPos = { lat: p.coords.latitude, lon: p.coords.longitude };
      if (Date.now() - lastSent < 10000) return;
      lastSent = Date.now();
      const extra = {};
      if (p.coords.heading !== null && !Number.isNaN(p.coords.heading)) extra.heading = p.coords.heading % 360;
      if (p.coords.speed !== null && !Number.isNaN(p.coords.speed)) extra.speed_kmh = Math.min(200, p.coords.speed * 3.6);
      state.socket.sendPosition(p.coords.latitude, p.coords.longitude, extra);
    }, () => {}, { enableHighAccuracy: true, maximumAge: 5000 });
  }
  render();
}

function init() {
  $("lang").addEventListener("click", () => {
    setLang(state.lang === "ja" ? "en" : "ja");
    state.lang = lang();
    render();
  });
  $("break").addEventListener("click", onBreak);
  document.addEventListener("pointerdown", () => ensureAudio(), { once: true });
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    const tok = $("token-input").value.trim();
    if (tok) start(tok);
  });
  window.addEventListener("error", (e) => { if (e.error) fatal(e.error); });
  window.addEventListener("unhandledrejection", (e) => fatal(e.reason instanceof Error ? e.reason : new Error(String(e.reason))));
  setInterval(tickClock, 1000);
  startDate($("date"), serverNow, () => state.lang);
  tickClock();

  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    params.delete("token");
    const q = params.toString();
    history.replaceState(null, "", location.pathname + (q ? `?${q}` : "") + location.hash);
  }
  const token = fromUrl || localStorage.getItem(TOKEN_KEY);
  if (token) start(token);
  else showLogin();
}

window.okumaDriver = { state, render, socket: () => state.socket };
init();
