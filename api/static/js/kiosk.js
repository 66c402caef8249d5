// Kiosk at a digital bus stop: destination → people → when → confirm → result, read aloud;
// or お買い物を届けてもらう: store → order → window → confirm → receipt with the handover code.
// No account: the kiosk token is set once on the device; rides start at the kiosk's own stop.
import { Api, getToken, setToken, clearToken, newKey, tokyoDate, tokyoIso, fmtTime, fmtDayTime, serviceNow, causeText, ZONES, tokyoMinutes, hm, addDays } from "./api.js";
import { el } from "./i18n.js";

const params = new URLSearchParams(location.search);
const IDLE_S = Number(params.get("idle") || 90);  // quiet time before the warning
const WARN_S = Number(params.get("warn") || 30);  // time to answer the warning (WCAG 2.2.1: ≥ 20 s)
const MAX_PARTY = 6;

const api = new Api("kiosk");
const root = document.getElementById("main");
const here = document.getElementById("here");
let me = null;
let stops = [];
let stores = [];
let byId = new Map();
let st = null;

function fresh() {
  return { step: "dest", destination: null, party: 1, wheelchair: false, when: null, offer: null, key: null, card: "", booking: null, error: null };
}

// ---- voice (ja-JP), can be switched off; the last phrase can be repeated
let voiceOn = localStorage.getItem("okuma.kiosk.voice") !== "off";
let lastSpoken = "";
function speak(text) {
  lastSpoken = text;
  window.__kioskSpoken = text;
  if (!voiceOn || !("speechSynthesis" in window)) return;
  speechSynthesis.cancel();
  const u = new SpeechSynthesisUtterance(text);
  u.lang = "ja-JP";
  u.rate = 0.9;
  speechSynthesis.speak(u);
}
const voiceBtn = document.getElementById("voice-toggle");
function drawVoice() {
  voiceBtn.setAttribute("aria-pressed", String(voiceOn));
  voiceBtn.textContent = voiceOn ? "🔈 音声 オン" : "🔇 音声 オフ";
}
voiceBtn.addEventListener("click", () => {
  voiceOn = !voiceOn;
  localStorage.setItem("okuma.kiosk.voice", voiceOn ? "on" : "off");
  if (!voiceOn && "speechSynthesis" in window) speechSynthesis.cancel();
  drawVoice();
});
document.getElementById("repeat").addEventListener("click", () => { const v = voiceOn; voiceOn = true; speak(lastSpoken); voiceOn = v; });
drawVoice();

// ---- inactivity: warn first, then go back to the start
const warnBox = document.getElementById("idle-warning");
const warnText = document.getElementById("idle-text");
let idleTimer = null;
let warnTimer = null;
let warnLeft = 0;
function idleReset() {
  clearTimeout(idleTimer);
  if (!warnBox.hidden) return;
  if (!st || (st.step === "dest" && !st.destination)) return; // nothing to lose at the start
  idleTimer = setTimeout(warn, IDLE_S * 1000);
}
function warn() {
  warnLeft = WARN_S;
  warnBox.hidden = false;
  const tick = () => {
    warnText.textContent = `操作がないため、あと ${warnLeft} 秒で はじめの画面に もどります。続けるときは「つづける」を押してください。`;
    if (warnLeft <= 0) { closeWarn(); start(); return; }
    warnLeft -= 1;
    warnTimer = setTimeout(tick, 1000);
  };
  tick();
  speak(`操作がありません。続けるときは、つづける を押してください。`);
  document.getElementById("idle-continue").focus();
}
function closeWarn() { clearTimeout(warnTimer); warnBox.hidden = true; }
document.getElementById("idle-continue").addEventListener("click", () => { closeWarn(); idleReset(); render(); });
for (const ev of ["pointerdown", "keydown", "input"]) document.addEventListener(ev, () => { if (warnBox.hidden) idleReset(); }, true);

// ---- screens
const stopName = (id) => (byId.get(id) || { name_ja: id }).name_ja;

function heading(text, stepNo) {
  return [
    stepNo ? el("p", { class: "steps" }, `ステップ ${stepNo} / 4`) : null,
    el("h1", { id: "step-title", tabindex: "-1" }, text),
  ];
}

function nav(back) {
  return el("div", { class: "nav" },
    back ? el("button", { type: "button", id: "back", onclick: back }, "← もどる") : null,
    el("button", { type: "button", id: "restart", onclick: start }, "はじめから"));
}

function go(step) { st.step = step; st.error = null; render(); }

function render() {
  const s = st;
  const body = [];
  let say = "";
  if (s.step === "dest") {
    say = `${stopName(me.stop_id)}から乗ります。行き先を選んでください。`;
    body.push(...heading("行き先を えらんでください", 1));
    // Stops with a kiosk are the common destinations: they fit one screen; the rest on request.
    for (const zone of Object.keys(ZONES)) {
      const list = stops.filter((x) => x.zone === zone && x.id !== me.stop_id && (s.showAll || x.kiosk));
      if (!list.length) continue;
      body.push(el("h2", {}, ZONES[zone].ja), el("div", { class: "grid" }, list.map((x) => el("button", {
        type: "button", dataset: { stop: x.id },
        onclick: () => { s.destination = x.id; go("party"); },
      }, x.name_ja, el("small", {}, x.name_kana)))));
    }
    body.push(el("div", { class: "nav" }, el("button", {
      type: "button", id: "more-stops", "aria-expanded": String(!!s.showAll),
      onclick: () => { s.showAll = !s.showAll; render(); },
    }, s.showAll ? "おもな行き先だけを表示" : "ほかの行き先を見る")));
    body.push(el("h2", {}, "お買い物"), el("div", { class: "grid" }, el("button", {
      type: "button", class: "primary", id: "deliver", onclick: () => go("dl_store"),
    }, "🛍 お買い物を届けてもらう", el("small", {}, "このバス停まで ミニバスが運びます"))));
  } else if (s.step.startsWith("dl_")) {
    say = deliveryScreen(s, body);
  } else if (s.step === "party") {
    say = `${stopName(s.destination)}まで。何人で乗りますか。`;
    body.push(...heading("何人で のりますか", 2),
      el("div", { class: "grid three", role: "group", "aria-label": "人数" }, Array.from({ length: MAX_PARTY }, (_, i) => el("button", {
        type: "button", dataset: { party: i + 1 },
        onclick: () => { s.party = i + 1; go("when"); },
      }, `${i + 1}人`))),
      el("h2", {}, "車いすを使いますか"),
      el("div", { class: "grid" },
        el("button", { type: "button", id: "wc-yes", "aria-pressed": String(s.wheelchair), onclick: () => { s.wheelchair = true; render(); } }, "はい 車いす"),
        el("button", { type: "button", id: "wc-no", "aria-pressed": String(!s.wheelchair), onclick: () => { s.wheelchair = false; render(); } }, "いいえ")),
      nav(() => go("dest")));
  } else if (s.step === "when") {
    const open = serviceNow();
    say = open.open ? "いつ乗りますか。今すぐ、または時間を選んでください。" : "ただいま運行時間外です。乗る時間を選んでください。";
    body.push(...heading("いつ のりますか", 3));
    if (open.open) {
      body.push(el("div", { class: "grid" },
        el("button", { type: "button", class: "primary", id: "when-now", onclick: () => { s.when = null; ask(); } }, "今すぐ"),
        el("button", { type: "button", id: "when-pick", onclick: () => go("time") }, "時間を えらぶ")));
    } else {
      body.push(el("p", { class: "notice" }, `ただいま運行時間外です(7:00〜20:00)。次は ${fmtDayTime(open.iso, "ja")} からです。`));
      body.push(timeButtons(open));
    }
    body.push(nav(() => go("party")));
  } else if (s.step === "time") {
    say = "乗る時間を選んでください。";
    body.push(...heading("乗る時間を えらんでください", 3), timeButtons(serviceNow()), nav(() => go("when")));
  } else if (s.step === "confirm") {
    const o = s.offer;
    const win = `${fmtTime(o.pickup_window_start)}から${fmtTime(o.pickup_window_end)}`;
    say = `${win}の間にお迎えに来ます。${stopName(me.stop_id)}から${stopName(s.destination)}まで、${s.party}名。よろしければ「はい 予約する」を押してください。`;
    const card = el("input", { id: "card", name: "card", inputmode: "numeric", autocomplete: "off", value: s.card, oninput: (e) => { s.card = e.target.value.replace(/[^A-Za-z0-9-]/g, ""); } });
    body.push(...heading("この内容で よろしいですか", 4),
      el("div", { class: "summary" },
        el("p", {}, "お迎えの時間"),
        el("p", { class: "huge", id: "offer-window" }, `${fmtTime(o.pickup_window_start)} 〜 ${fmtTime(o.pickup_window_end)}`),
        el("p", {}, `${stopName(me.stop_id)} → ${stopName(s.destination)}`),
        el("p", {}, `${s.party}人${s.wheelchair ? "(車いす)" : ""} ・ 運賃 0円`),
        el("p", {}, `おそくとも ${fmtTime(o.latest_dropoff)} に到着`)),
      el("label", { for: "card" }, "乗車カード番号(お持ちの方だけ)"), card,
      el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error || ""),
      el("div", { class: "nav" },
        el("button", { type: "button", class: "yes", id: "confirm", onclick: confirm }, "はい 予約する"),
        el("button", { type: "button", id: "no", onclick: () => go("when") }, "いいえ")),
      nav(null));
  } else if (s.step === "done") {
    const b = s.booking;
    const win = `${fmtTime(b.pickup_window_start)}から${fmtTime(b.pickup_window_end)}`;
    say = `予約できました。${win}の間に、このバス停にお迎えに来ます。${stopName(b.destination.stop_id)}まで。`;
    body.push(el("div", { class: "result", role: "status" },
      el("h1", { id: "step-title", tabindex: "-1" }, "予約 できました"),
      el("p", {}, "このバス停で お待ちください"),
      el("p", { class: "huge", id: "result-window" }, `${fmtTime(b.pickup_window_start)} 〜 ${fmtTime(b.pickup_window_end)}`),
      el("p", {}, `${fmtDayTime(b.pickup_window_start, "ja").split(" ")[0]} ・ ${stopName(b.destination.stop_id)} まで ・ ${b.party_size}人`),
      el("p", {}, `予約番号 ${b.id.slice(-6).toUpperCase()}`)),
      el("div", { class: "nav" }, el("button", { type: "button", class: "primary", id: "finish", onclick: start }, "おわる")));
  } else if (s.step === "noride") {
    const alts = [...(s.noride.alternatives || [])].sort((a, b) => new Date(a) - new Date(b));
    say = `${causeText(s.noride.cause, "ja")}${alts.length ? `${fmtTime(alts[0])}なら乗れます。` : ""}`;
    body.push(el("h1", { id: "step-title", tabindex: "-1" }, "その時間は 乗れません"),
      el("p", { class: "alert", role: "alert", id: "cause" }, causeText(s.noride.cause, "ja")),
      alts.length ? el("h2", {}, "この時間なら 乗れます") : el("p", {}, "窓口にお電話でもご相談いただけます。"),
      el("div", { class: "grid" }, alts.map((iso) => el("button", {
        type: "button", class: "alt", dataset: { time: iso }, onclick: () => { s.when = iso; ask(); },
      }, `${fmtTime(iso)} に出発`))),
      nav(() => go("when")));
  } else if (s.step === "busy") {
    say = "調べています。少しお待ちください。";
    body.push(el("h1", { id: "step-title", tabindex: "-1", role: "status" }, "しらべています…"));
  }
  if (s.error && s.step !== "confirm" && s.step !== "dl_confirm") body.push(el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error));
  root.replaceChildren(...body.filter(Boolean));
  const title = document.getElementById("step-title");
  if (title) title.focus();
  speak(say);
  idleReset();
}

// ---- groceries delivered to this stop: store → order → window → confirm → receipt with the code
function deliveryWindows() {
  // The next six hour-long windows that start at least 45 minutes from now, inside service hours.
  const out = [];
  let day = tokyoDate();
  let m = Math.ceil((tokyoMinutes() + 45) / 60) * 60;
  while (out.length < 6) {
    if (m < 8 * 60) m = 8 * 60;
    if (m > 19 * 60) { day = addDays(day, 1); m = 8 * 60; }
    out.push([tokyoIso(day, hm(m)), tokyoIso(day, hm(m + 60))]);
    m += 60;
  }
  return out;
}

function deliveryScreen(s, body) {
  const d = s.dl || (s.dl = { store: null, list: "", order: "", window: null, offer: null, booking: null });
  if (s.step === "dl_store") {
    body.push(...heading("どのお店から 届けますか", 1), el("div", { class: "grid" }, stores.map((x) => el("button", {
      type: "button", dataset: { store: x.id }, onclick: () => { d.store = x; go("dl_list"); },
    }, x.name_ja, el("small", {}, `${x.opens_local}〜${x.closes_local}`)))), nav(() => go("dest")));
    return "どのお店から届けますか。";
  }
  if (s.step === "dl_list") {
    body.push(...heading("ご注文を 入れてください", 2),
      el("label", { for: "dl-order" }, "お店の注文番号(お店で注文した方)"),
      el("input", { id: "dl-order", name: "order", autocomplete: "off", value: d.order, oninput: (e) => { d.order = e.target.value.replace(/[^A-Za-z0-9-]/g, ""); } }),
      el("label", { for: "dl-list" }, "または 買い物メモ(お店に送ります)"),
      el("textarea", { id: "dl-list", name: "list", rows: 3, maxlength: 500, oninput: (e) => { d.list = e.target.value; } }, d.list),
      el("div", { class: "nav" }, el("button", { type: "button", class: "primary", id: "dl-next", onclick: () => {
        if (!d.order && !d.list.trim()) { s.error = "注文番号か買い物メモを入れてください。"; render(); return; }
        go("dl_when");
      } }, "つぎへ")), nav(() => go("dl_store")));
    return `${d.store.name_ja}へのご注文を入れてください。`;
  }
  if (s.step === "dl_when") {
    body.push(...heading("いつ 届けますか", 3), el("div", { class: "grid" }, deliveryWindows().map(([a, b]) => el("button", {
      type: "button", class: "slot", dataset: { window: a }, onclick: () => { d.window = [a, b]; askDelivery(); },
    }, `${tokyoDate(new Date(a)) === tokyoDate() ? "" : fmtDayTime(a, "ja").split(" ")[0] + " "}${fmtTime(a)}〜${fmtTime(b)}`))), nav(() => go("dl_list")));
    return "届ける時間を選んでください。";
  }
  if (s.step === "dl_confirm") {
    const o = d.offer;
    body.push(...heading("この内容で よろしいですか", 4),
      el("div", { class: "summary" },
        el("p", {}, "お届けの時間"),
        el("p", { class: "huge", id: "dl-window" }, `${fmtTime(o.delivery_window_start)} 〜 ${fmtTime(o.delivery_window_end)}`),
        el("p", {}, `${d.store.name_ja} → ${stopName(me.stop_id)}`),
        el("p", {}, d.order ? `注文番号 ${d.order}` : d.list)),
      el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error || ""),
      el("div", { class: "nav" },
        el("button", { type: "button", class: "yes", id: "dl-confirm", onclick: confirmDelivery }, "はい 頼む"),
        el("button", { type: "button", id: "no", onclick: () => go("dl_when") }, "いいえ")), nav(null));
    return `${fmtTime(o.delivery_window_start)}から${fmtTime(o.delivery_window_end)}の間に、このバス停へ届けます。よろしければ「はい 頼む」を押してください。`;
  }
  // dl_done: the receipt. The code is what the recipient shows the driver (the driver never sees it elsewhere).
  const b = d.booking;
  const code = b.delivery.handover_code;
  body.push(el("div", { class: "result", role: "status" },
    el("h1", { id: "step-title", tabindex: "-1" }, "ご注文を お受けしました"),
    el("p", {}, `${fmtTime(b.delivery.window_start)} 〜 ${fmtTime(b.delivery.window_end)} に このバス停へ届けます`),
    el("p", {}, "受け渡しコード(運転士に見せてください)"),
    el("p", { class: "huge", id: "dl-code" }, code),
    el("p", {}, `予約番号 ${b.id.slice(-6).toUpperCase()}`)),
    el("div", { class: "nav" }, el("button", { type: "button", class: "primary", id: "finish", onclick: start }, "おわる")));
  return `ご注文をお受けしました。受け渡しコードは ${code.split("").join(" ")} です。`;
}

async function askDelivery() {
  const s = st;
  const d = s.dl;
  go("busy");
  try {
    d.offer = await api.offer({
      kind: "delivery", destination: { stop_id: me.stop_id },
      delivery: { store_id: d.store.id, order_number: d.order || null, shopping_list: d.list.trim() || null,
        window_start: d.window[0], window_end: d.window[1] },
    });
    s.key = newKey();
    go("dl_confirm");
  } catch (e) {
    if (s !== st) return;
    s.error = e.code === "NoRideAvailable" ? `${causeText(e.body.cause, "ja")} ほかの時間を選んでください。` : (e.text ? e.text("ja") : String(e));
    s.step = "dl_when";
    render();
  }
}

async function confirmDelivery() {
  if (confirming) return;
  confirming = true;
  const s = st;
  document.getElementById("dl-confirm").disabled = true;
  try {
    s.dl.booking = await api.confirm(s.dl.offer.offer_id, s.key);
    go("dl_done");
  } catch (e) {
    s.error = e.text ? e.text("ja") : String(e);
    render();
  } finally {
    confirming = false;
  }
}

function timeButtons(open) {
  // The next eight quarter hours inside service hours (today, or the next service day).
  const out = [];
  let day = tokyoDate();
  let m = open.open ? Math.ceil((tokyoMinutes() + 15) / 15) * 15 : 7 * 60;
  if (!open.open) day = open.day;
  while (out.length < 8) {
    if (m > 19 * 60 + 45) { day = addDays(day, 1); m = 7 * 60; }
    out.push(tokyoIso(day, hm(m)));
    m += 15;
  }
  return el("div", { class: "grid" }, out.map((iso) => el("button", {
    type: "button", class: "slot", dataset: { time: iso }, onclick: () => { st.when = iso; ask(); },
  }, day === tokyoDate() && tokyoDate(new Date(iso)) === tokyoDate() ? fmtTime(iso) : fmtDayTime(iso, "ja"))));
}

function request(card) {
  const req = {
    origin: { stop_id: me.stop_id }, destination: { stop_id: st.destination },
    time_mode: st.when ? "leave_at" : "now", party_size: st.party, wheelchairs: st.wheelchair ? 1 : 0,
  };
  if (st.when) req.time = st.when;
  if (card) req.rider_card = card;
  return req;
}

async function ask() {
  const s = st;
  go("busy");
  try {
    s.offer = await api.offer(request(s.card));
    s.offer.rider_card = s.card;
    s.key = newKey();
    go("confirm");
  } catch (e) {
    if (s !== st) return;
    if (e.code === "NoRideAvailable") { s.noride = e.body; go("noride"); return; }
    s.error = e.text ? e.text("ja") : String(e);
    s.step = "when";
    render();
  }
}

let confirming = false;
async function confirm() {
  if (confirming) return;
  confirming = true;
  const s = st;
  const btn = document.getElementById("confirm");
  btn.disabled = true;
  try {
    if (s.card && s.offer.rider_card !== s.card) {
      // The card number belongs to the request: ask once more with it, then confirm.
      s.offer = await api.offer(request(s.card));
      s.offer.rider_card = s.card;
      s.key = newKey();
    }
    s.booking = await api.confirm(s.offer.offer_id, s.key);
    go("done");
  } catch (e) {
    if (e.code === "NoRideAvailable") { s.noride = e.body; go("noride"); }
    else { s.error = e.text ? e.text("ja") : String(e); render(); }
  } finally {
    confirming = false;
  }
}

function start() {
  closeWarn();
  st = fresh();
  render();
}

function setup(message) {
  root.replaceChildren(el("form", { class: "setup stack", onsubmit: async (e) => {
    e.preventDefault();
    setToken("kiosk", document.getElementById("kiosk-token").value);
    try { await boot(); } catch (err) { clearToken("kiosk"); setup(err.text ? err.text("ja") : String(err)); }
  } },
  el("h1", {}, "端末の設定(職員用)"),
  el("p", {}, "この端末に「キオスク用トークン」を一度だけ登録します。"),
  el("label", { for: "kiosk-token" }, "キオスク用トークン"),
  el("input", { id: "kiosk-token", name: "token", autocomplete: "off", required: true }),
  el("div", { class: "alert", role: "alert" }, message || ""),
  el("button", { type: "submit", class: "primary" }, "登録する")));
  document.getElementById("kiosk-token").focus();
}

async function boot() {
  me = await api.me();
  if (me.role !== "kiosk" || !me.stop_id) throw Object.assign(new Error("role"), { text: () => "キオスク用のトークンではありません。" });
  stops = await api.stops();
  stores = await api.request("GET", "/api/v1/stores");
  byId = new Map(stops.map((x) => [x.id, x]));
  here.textContent = `のりあいミニバス ・ ${stopName(me.stop_id)} のりば`;
  start();
}

if (getToken("kiosk")) boot().catch((e) => setup(e.text ? e.text("ja") : String(e)));
else setup();
