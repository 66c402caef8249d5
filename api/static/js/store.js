// Store page: today's grocery orders, live over /ws/store (first-message auth, no token in the URL).
// Orders to prepare → "ready" with parcels and temperature → the minibus comes (the driver confirms
// the pickup on the tablet) → delivered or returned. While the live link is down it polls.
import { Api, ApiError, getToken, setToken, clearToken, fmtTime } from "./api.js";
import { el, lang, setLang, translator } from "./i18n.js";

const api = new Api("store");
const root = document.getElementById("main");
const statusBox = document.getElementById("live-status");
const POLL_MS = 20000;
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const LIVE = { ws: null, tries: 0, retry: null, poll: null, stopped: false };
let last = null; // the latest store_orders

const TEXTS = {
  title: { ja: "お店の画面", en: "Store" },
  pageTitle: { ja: "お店の画面 — 大熊町 のりあいミニバス", en: "Store — Okuma shared minibus" },
  tokenLabel: { ja: "お店用トークン", en: "Store token" },
  login: { ja: "はじめる", en: "Start" },
  logout: { ja: "ログアウト", en: "Sign out" },
  connecting: { ja: "ライブ接続中…", en: "Connecting…" },
  live: { ja: "ライブ更新中", en: "Live" },
  down: { ja: "再接続中…(20秒ごとに自動更新)", en: "Reconnecting… (refreshing every 20 s)" },
  toPrepare: { ja: "準備する注文", en: "Orders to prepare" },
  waiting: { ja: "準備済み・ミニバス待ち", en: "Ready, waiting for the minibus" },
  onTheWay: { ja: "お届け中", en: "On the way" },
  done: { ja: "お届け済み・戻り", en: "Delivered or returned" },
  none: { ja: "ありません。", en: "None." },
  order: { ja: "注文 {n}", en: "Order {n}" },
  listed: { ja: "買い物メモ", en: "Shopping list" },
  to: { ja: "{name} 様 ・ お届け {from}〜{to}", en: "For {name} · deliver {from}–{to}" },
  readyFrom: { ja: "準備のめやす: {t} まで", en: "Prepare by {t}" },
  bus: { ja: "ミニバス到着予定 {t}(運転士がタブレットで受け取りを確認します)", en: "Minibus due {t} (the driver confirms the pickup on the tablet)" },
  busUnknown: { ja: "ミニバスの時刻は決まりしだい表示します", en: "The minibus time will show here" },
  parcels: { ja: "荷物の数", en: "Parcels" },
  temp: { ja: "温度帯", en: "Temperature" },
  ambient: { ja: "常温", en: "Ambient" },
  chilled: { ja: "冷蔵", en: "Chilled" },
  frozen: { ja: "冷凍", en: "Frozen" },
  markReady: { ja: "準備できた", en: "Mark ready" },
  receivedBack: { ja: "戻ってきた荷物を受け取った", en: "Returned parcel received" },
  st_ordered: { ja: "準備待ち", en: "To prepare" },
  st_ready: { ja: "準備済み", en: "Ready" },
  st_picked_up: { ja: "ミニバスでお届け中", en: "On the minibus" },
  st_delivered: { ja: "お届け済み", en: "Delivered" },
  st_returning: { ja: "お店(または指定の場所)へ戻り中", en: "Coming back" },
  st_returned: { ja: "戻りました", en: "Returned" },
  st_locked: { ja: "受け渡し停止(役場が対応)", en: "Handover locked (town office)" },
  st_cancelled: { ja: "取り消し", en: "Cancelled" },
  units: { ja: "{n}個", en: "{n} units" },
};
const tx = translator(TEXTS);

function setStatus(key) { statusBox.dataset.key = key || ""; statusBox.textContent = key ? tx(key) : ""; }

// ---------------------------------------------------------------- sign in

function showLogin(message) {
  root.replaceChildren(
    el("form", { class: "login", onsubmit: (ev) => { ev.preventDefault(); setToken("store", document.getElementById("store-token").value); start(); } },
      el("label", { for: "store-token" }, tx("tokenLabel")),
      el("input", { id: "store-token", name: "token", type: "password", autocomplete: "off", required: true }),
      el("button", { type: "submit", class: "primary" }, tx("login")),
      message ? el("p", { class: "error", role: "alert" }, message) : null));
  document.getElementById("store-token").focus();
}

// ---------------------------------------------------------------- drawing

function orderCard(o, storeStop) {
  const n = o.order_number || o.booking_id.slice(-6);
  const st = el("span", { class: `badge ${["delivered", "returned"].includes(o.status) ? "done" : ["returning", "locked", "cancelled"].includes(o.status) ? "back" : ""}` }, tx(`st_${o.status}`));
  const items = [
    el("h3", {}, tx("order", { n }), " ", st),
    el("p", { class: "meta" }, tx("to", { name: o.recipient_name || "—", from: o.window_start ? fmtTime(o.window_start) : "", to: fmtTime(o.window_end) }),
      " ・ ", tx("units", { n: o.parcels }), " ・ ", tx(o.temperature)),
  ];
  if (o.shopping_list) items.push(el("p", { class: "list", "aria-label": tx("listed") }, o.shopping_list));
  if (o.status === "ordered") {
    items.push(el("p", {}, tx("readyFrom", { t: fmtTime(o.planned_pickup || o.ready_from) })));
    const pid = `parcels-${o.booking_id}`;
    const tid = `temp-${o.booking_id}`;
    items.push(el("form", { class: "ready-form", dataset: { booking: o.booking_id }, onsubmit: (ev) => { ev.preventDefault(); markReady(o, ev.target); } },
      el("label", { for: pid }, tx("parcels")),
      el("input", { id: pid, name: "parcels", type: "number", min: 1, max: o.parcels, value: o.parcels, required: true, inputmode: "numeric" }),
      el("label", { for: tid }, tx("temp")),
      el("select", { id: tid, name: "temperature" },
        ...["ambient", "chilled", "frozen"].map((t) => el("option", { value: t, selected: t === o.temperature }, tx(t)))),
      el("button", { type: "submit", class: "primary" }, tx("markReady")),
      el("p", { class: "error", role: "alert", id: `err-${o.booking_id}` })));
  }
  if (o.status === "ready") items.push(el("p", { class: "bus" }, o.planned_pickup ? tx("bus", { t: fmtTime(o.planned_pickup) }) : tx("busUnknown")));
  if (o.status === "returning" && o.return_stop_id === storeStop) {
    items.push(el("button", { type: "button", onclick: () => receivedBack(o) }, tx("receivedBack")),
      el("p", { class: "error", role: "alert", id: `err-${o.booking_id}` }));
  }
  return el("li", { class: "order", dataset: { booking: o.booking_id, status: o.status } }, ...items);
}

function draw(data) {
  last = data;
  document.getElementById("title").textContent = `${tx("title")} — ${lang() === "en" ? data.store.name_en : data.store.name_ja}`;
  const groups = [
    ["toPrepare", ["ordered"]],
    ["waiting", ["ready"]],
    ["onTheWay", ["picked_up", "returning", "locked"]],
    ["done", ["delivered", "returned", "cancelled"]],
  ];
  const focused = document.activeElement && document.activeElement.id;
  root.replaceChildren(
    el("div", { class: "sections" }, ...groups.map(([key, statuses]) => {
      const mine = data.orders.filter((o) => statuses.includes(o.status));
      return el("section", { "aria-labelledby": `h-${key}` },
        el("h2", { id: `h-${key}` }, tx(key), ` (${mine.length})`),
        mine.length ? el("ul", { class: "orders" }, ...mine.map((o) => orderCard(o, data.store.stop_id))) : el("p", {}, tx("none")));
    })),
    el("p", {}, el("button", { type: "button", id: "logout", onclick: () => { clearToken("store"); stopLive(); showLogin(); } }, tx("logout"))));
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
}

async function markReady(o, form) {
  const body = { parcels: Number(form.parcels.value), temperature: form.temperature.value };
  try {
    await api.request("POST", `/api/v1/store/orders/${encodeURIComponent(o.booking_id)}/ready`, { body });
    await refresh(); // the live channel sends it too; this keeps the page right while it is down
  } catch (e) {
    const box = document.getElementById(`err-${o.booking_id}`);
    if (box) box.textContent = e instanceof ApiError ? e.text(lang()) : String(e);
  }
}

async function receivedBack(o) {
  try {
    await api.request("POST", `/api/v1/deliveries/${encodeURIComponent(o.booking_id)}/received-back`);
    await refresh();
  } catch (e) {
    const box = document.getElementById(`err-${o.booking_id}`);
    if (box) box.textContent = e instanceof ApiError ? e.text(lang()) : String(e);
  }
}

async function refresh() {
  try {
    draw(await api.request("GET", "/api/v1/store/orders"));
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) { stopLive(); showLogin(e.text(lang())); }
  }
}

// ---------------------------------------------------------------- the live channel

const ON = {
  store_orders: (m) => draw(m),
  ping: (m, ws) => ws.send(JSON.stringify({ type: "pong", t: m.t })),
  pong: () => {},
  error: (m) => {
    console.warn("live channel error:", m.code, m.message_en);
    if (["Unauthorised", "Forbidden"].includes(m.code)) { stopLive(); showLogin(lang() === "en" ? m.message_en : m.message_ja); }
  },
};

function stopLive() {
  LIVE.stopped = true;
  clearTimeout(LIVE.retry);
  clearInterval(LIVE.poll);
  LIVE.poll = null;
  if (LIVE.ws) LIVE.ws.close();
}

function connect() {
  LIVE.stopped = false;
  setStatus("connecting");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws/store`);
  LIVE.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "hello", token: api.token, client: "store-page" }));
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    const h = ON[m && m.type];
    if (!h) throw new Error(`live channel: unknown message type ${m && m.type}`);
    if (m.type === "store_orders") {
      LIVE.tries = 0;
      clearInterval(LIVE.poll);
      LIVE.poll = null;
      setStatus("live");
    }
    h(m, ws);
  };
  ws.onclose = () => {
    if (LIVE.stopped) return;
    setStatus("down");
    if (!LIVE.poll) LIVE.poll = setInterval(refresh, POLL_MS);
    LIVE.retry = setTimeout(connect, BACKOFF_MS[Math.min(LIVE.tries++, BACKOFF_MS.length - 1)]);
  };
}

function start() {
  if (!getToken("store")) { showLogin(); return; }
  root.replaceChildren(el("p", {}, tx("connecting")));
  connect();
}

// The 日本語 / English switch: remembered on this device (i18n.js), the page redrawn in place.
function drawChrome() {
  document.documentElement.lang = lang();
  document.title = tx("pageTitle");
  document.getElementById("title").textContent = tx("title");
  const b = document.getElementById("lang-toggle");
  b.textContent = lang() === "en" ? "日本語" : "English";
  b.setAttribute("lang", lang() === "en" ? "ja" : "en");
  if (statusBox.dataset.key) setStatus(statusBox.dataset.key);
}
document.getElementById("lang-toggle").addEventListener("click", () => {
  setLang(lang() === "en" ? "ja" : "en");
  drawChrome();
  if (last) draw(last); else if (document.getElementById("store-token")) showLogin();
  document.getElementById("lang-toggle").focus();
});
drawChrome();
start();
