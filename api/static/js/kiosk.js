// Kiosk at a digital bus stop: destination → people → wheelchair → when → confirm → result, read
// aloud; look up and cancel by booking number; a rider card or QR attaches the booking to its holder;
// or お買い物を届けてもらう: store → order → window → confirm → receipt with the handover code.
// No account: the kiosk token is set once on the device; rides start at the kiosk's own stop.
import { Api, getToken, setToken, clearToken, newKey, tokyoDate, tokyoIso, fmtTime, fmtDayTime, serviceNow, causeText, ZONES, tokyoMinutes, hm, addDays } from "./api.js";
import { el, translator } from "./i18n.js";
import { icon } from "./icons.js";
import { TEXTS, STATUS_TEXT, KANA, NUMBER_CHARS, KIOSK_LANGS } from "./kiosk-texts.js";

const params = new URLSearchParams(location.search);
const IDLE_S = Number(params.get("idle") || 90);  // quiet time before the warning
const WARN_S = Number(params.get("warn") || 30);  // time to answer the warning (WCAG 2.2.1: ≥ 20 s)
const MAX_PARTY = 6;
const MAX_NAME = 20;
const APPROACH_MS = 30_000;

const api = new Api("kiosk");
const root = document.getElementById("main");
const here = document.getElementById("here");
const tr = translator(TEXTS);
let me = null;
let service = null;
let stops = [];
let stores = [];
let byId = new Map();
let st = null;
let approaching = [];

// ---- language: 日本語 / やさしい日本語 / English (the kiosk's choice, back to Japanese at the start)
let kl = "ja";
const t = (key, vars = {}) => tr(key, vars, kl);
const isEn = () => kl === "en";
function setKioskLang(l) {
  kl = KIOSK_LANGS.includes(l) ? l : "ja";
  document.documentElement.lang = isEn() ? "en" : "ja";
  for (const b of document.querySelectorAll("[data-lang]")) b.setAttribute("aria-pressed", String(b.dataset.lang === kl));
  drawHeader();
}

function fresh() {
  return { step: "dest", destination: null, party: 1, wheelchair: false, when: null, offer: null, key: null,
           card: "", name: "", booking: null, error: null, number: "", found: null };
}

// ---- voice, can be switched off; the last phrase can be repeated
let voiceOn = localStorage.getItem("okuma.kiosk.voice") !== "off";
let lastSpoken = "";
function speak(text) {
  lastSpoken = text;
  window.__kioskSpoken = text;
  if (!voiceOn || !("speechSynthesis" in window)) return;
  speechSynthesis.cancel();
  const u = new SpeechSynthesisUtterance(text);
  u.lang = isEn() ? "en-US" : "ja-JP";
  u.rate = 0.9;
  speechSynthesis.speak(u);
}
// Read a booking number one character at a time ("7、K、3、…").
const spell = (n) => n.split("").join(isEn() ? ", " : "、");

const voiceBtn = document.getElementById("voice-toggle");
const repeatBtn = document.getElementById("repeat");
const callBtn = document.getElementById("call");
function drawHeader() {
  voiceBtn.setAttribute("aria-pressed", String(voiceOn));
  voiceBtn.replaceChildren(icon(voiceOn ? "voice_on" : "voice_off"), t(voiceOn ? "voice_on" : "voice_off"));
  repeatBtn.replaceChildren(icon("repeat"), t("repeat"));
  callBtn.replaceChildren(icon("phone"), t("call"));
  document.getElementById("lang-group").setAttribute("aria-label", t("lang_group"));
  document.getElementById("idle-title").textContent = t("idle_title");
  document.getElementById("idle-continue").textContent = t("idle_continue");
  document.getElementById("call-title").textContent = t("call_title");
  document.getElementById("call-close").textContent = t("close");
  if (me) here.textContent = t("here", { stop: stopName(me.stop_id) });
  else here.textContent = t("title");
}
voiceBtn.addEventListener("click", () => {
  voiceOn = !voiceOn;
  localStorage.setItem("okuma.kiosk.voice", voiceOn ? "on" : "off");
  if (!voiceOn && "speechSynthesis" in window) speechSynthesis.cancel();
  drawHeader();
});
repeatBtn.addEventListener("click", () => { const v = voiceOn; voiceOn = true; speak(lastSpoken); voiceOn = v; });
for (const b of document.querySelectorAll("[data-lang]")) {
  b.addEventListener("click", () => { setKioskLang(b.dataset.lang); if (st) render(); });
}

// ---- "call the town office": the number from the service rules, large
const callBox = document.getElementById("call-box");
callBtn.addEventListener("click", () => {
  const body = document.getElementById("call-body");
  const phone = service && service.office_phone;
  body.replaceChildren(...(phone
    ? [el("p", { class: "huge", id: "office-phone" }, phone), el("p", {}, t("call_hint")),
       el("a", { class: "button primary", id: "call-now", href: `tel:${phone.replaceAll("-", "")}` }, icon("phone"), t("call_now"))]
    : [el("p", { id: "office-phone" }, t("call_unset"))]));
  callBox.hidden = false;
  speak(phone ? `${t("call_title")}、${phone}` : t("call_unset"));
  document.getElementById("call-close").focus();
});
function closeCall() { callBox.hidden = true; callBtn.focus(); }
document.getElementById("call-close").addEventListener("click", closeCall);
callBox.addEventListener("keydown", (e) => { if (e.key === "Escape") closeCall(); });

// ---- inactivity: warn first, then go back to the start
const warnBox = document.getElementById("idle-warning");
const warnText = document.getElementById("idle-text");
let idleTimer = null;
let warnTimer = null;
let warnLeft = 0;
function idleReset() {
  clearTimeout(idleTimer);
  if (!warnBox.hidden) return;
  if (!st || (st.step === "dest" && !st.destination && kl === "ja")) return; // nothing to lose at the start
  idleTimer = setTimeout(warn, IDLE_S * 1000);
}
function warn() {
  warnLeft = WARN_S;
  warnBox.hidden = false;
  const tick = () => {
    warnText.textContent = t("idle_text", { s: warnLeft });
    if (warnLeft <= 0) { closeWarn(); start(); return; }
    warnLeft -= 1;
    warnTimer = setTimeout(tick, 1000);
  };
  tick();
  speak(t("idle_say"));
  document.getElementById("idle-continue").focus();
}
function closeWarn() { clearTimeout(warnTimer); warnBox.hidden = true; }
document.getElementById("idle-continue").addEventListener("click", () => { closeWarn(); idleReset(); render(); });
for (const ev of ["pointerdown", "keydown", "input"]) document.addEventListener(ev, () => { if (warnBox.hidden) idleReset(); }, true);

// ---- screens
const stopName = (id) => { const s = byId.get(id); return s ? (isEn() ? s.name_en : s.name_ja) : id; };
const win = (a, b) => (isEn() ? `${fmtTime(a)} and ${fmtTime(b)}` : `${fmtTime(a)}から${fmtTime(b)}`);
const dayText = (iso) => fmtDayTime(iso, isEn() ? "en" : "ja").split(" ").slice(0, -1).join(" ");

function heading(text, stepNo) {
  return [
    stepNo ? el("p", { class: "steps" }, t("step", { n: stepNo })) : null,
    el("h1", { id: "step-title", tabindex: "-1" }, text),
  ];
}

function btn(attrs, ...children) { return el("button", { type: "button", ...attrs }, ...children); }

function nav(back) {
  return el("div", { class: "nav" },
    back ? btn({ id: "back", onclick: back }, icon("back"), t("back")) : null,
    btn({ id: "restart", onclick: start }, t("restart")));
}

function go(step) { st.step = step; st.error = null; render(); }

function approachingBox() {
  const list = approaching.slice(0, 3);
  return el("section", { class: "approaching", "aria-labelledby": "approaching-title" },
    el("h2", { id: "approaching-title" }, icon("bus", 32), t("approaching")),
    list.length
      ? el("ul", { id: "approaching-list" }, list.map((a) => el("li", {}, `${isEn() ? a.name_en : a.name_ja} ${fmtTime(a.planned_at)}`)))
      : el("p", { id: "approaching-list" }, t("approaching_none")));
}

const SCREENS = {
  dest(s) {
    const body = [...heading(t("dest_title"), 1)];
    // Stops with a kiosk are the common destinations: they fit one screen; the rest on request.
    for (const zone of Object.keys(ZONES)) {
      const list = stops.filter((x) => x.zone === zone && x.id !== me.stop_id && (s.showAll || x.kiosk));
      if (!list.length) continue;
      body.push(el("h2", {}, ZONES[zone][isEn() ? "en" : "ja"]), el("div", { class: "grid dest" }, list.map((x) => btn({
        dataset: { stop: x.id }, onclick: () => { s.destination = x.id; go("party"); },
      }, isEn() ? x.name_en : x.name_ja, isEn() ? null : el("small", {}, x.name_kana)))));
    }
    body.push(el("div", { class: "nav" },
      btn({ id: "more-stops", "aria-expanded": String(!!s.showAll), onclick: () => { s.showAll = !s.showAll; render(); } },
        t(s.showAll ? "fewer" : "more")),
      btn({ id: "lookup", onclick: () => go("lookup") }, icon("search"), t("lookup"))),
      el("h2", {}, "お買い物 / Shopping"), el("div", { class: "grid" }, btn({
        class: "primary", id: "deliver", onclick: () => go("dl_store"),
      }, "お買い物を届けてもらう", el("small", {}, "このバス停まで ミニバスが運びます"))),
      approachingBox());
    return [body, t("dest_say", { stop: stopName(me.stop_id) })];
  },
  party(s) {
    return [[...heading(t("party_title"), 2),
      el("div", { class: "grid three", role: "group", "aria-label": t("party_group") }, Array.from({ length: MAX_PARTY }, (_, i) => btn({
        dataset: { party: i + 1 }, onclick: () => { s.party = i + 1; go("wheelchair"); },
      }, t("party_n", { n: i + 1 })))),
      nav(() => go("dest"))], t("party_say", { stop: stopName(s.destination) })];
  },
  wheelchair(s) {
    // Its own question, one tap either way: it cannot be skipped by choosing the number of people.
    return [[...heading(t("wc_title"), 3),
      el("div", { class: "grid" },
        btn({ id: "wc-yes", onclick: () => { s.wheelchair = true; go("when"); } }, icon("wheelchair", 56), t("wc_yes")),
        btn({ id: "wc-no", onclick: () => { s.wheelchair = false; go("when"); } }, t("wc_no"))),
      nav(() => go("party"))], t("wc_say")];
  },
  when(s) {
    const open = serviceNow();
    const body = [...heading(t("when_title"), 4)];
    if (open.open) {
      body.push(el("div", { class: "grid" },
        btn({ class: "primary", id: "when-now", onclick: () => { s.when = null; ask(); } }, t("now")),
        btn({ id: "when-pick", onclick: () => go("time") }, t("pick_time"))));
    } else {
      body.push(el("p", { class: "notice" }, t("closed", { start: service.service_start, end: service.service_end, next: fmtDayTime(open.iso, isEn() ? "en" : "ja") })));
      body.push(timeButtons(open));
    }
    body.push(nav(() => go("wheelchair")));
    return [body, t(open.open ? "when_say" : "when_closed_say")];
  },
  time() {
    return [[...heading(t("time_title"), 4), timeButtons(serviceNow()), nav(() => go("when"))], t("time_say")];
  },
  confirm(s) {
    const o = s.offer;
    const name = o.passenger_name || "";
    return [[...heading(t("confirm_title"), 5),
      el("div", { class: "summary" },
        el("p", {}, t("pickup_time")),
        el("p", { class: "huge", id: "offer-window" }, `${fmtTime(o.pickup_window_start)} 〜 ${fmtTime(o.pickup_window_end)}`),
        el("p", {}, `${stopName(me.stop_id)} → ${stopName(s.destination)}`),
        el("p", {}, t("people_fare", { n: s.party, wc: s.wheelchair ? t("with_wc") : "", fare: o.fare_yen })),
        el("p", {}, t("arrive_by", { t: fmtTime(o.latest_dropoff) })),
        el("p", { id: "offer-name" }, t("name_row", { name: name || t("no_name") }))),
      el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error || ""),
      el("div", { class: "nav" },
        btn({ class: "yes", id: "confirm", onclick: confirm }, icon("check"), t("yes_book")),
        btn({ id: "no", onclick: () => go("when") }, t("no"))),
      el("div", { class: "nav" },
        btn({ id: "add-card", onclick: () => go("card") }, t("add_card")),
        btn({ id: "add-name", onclick: () => go("name") }, t("add_name"))),
      nav(null)],
    t("confirm_say", { win: win(o.pickup_window_start, o.pickup_window_end), from: stopName(me.stop_id), to: stopName(s.destination), n: s.party })];
  },
  card(s) {
    // A card reader (or QR reader) types the number and Enter into the focused field.
    const input = el("input", { id: "card", name: "card", autocomplete: "off", inputmode: "text", value: s.card,
      "aria-describedby": "kiosk-error", oninput: (e) => { s.card = e.target.value; } });
    return [[...heading(t("card_title")),
      el("form", { class: "stack", onsubmit: (e) => { e.preventDefault(); useCard(); } },
        el("label", { for: "card" }, t("card_label")), input,
        el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error || ""),
        el("div", { class: "nav" }, el("button", { type: "submit", class: "primary", id: "card-ok" }, t("card_ok")))),
      nav(() => go("confirm"))], t("card_say"), "#card"];
  },
  name(s) {
    const value = el("output", { id: "name-value", "aria-live": "polite", "aria-label": t("name_value") }, s.name || "　");
    const add = (ch) => {
      if (ch === "゛" || ch === "゜") { // voiced marks join the last kana, if it takes them
        const last = s.name.slice(-1);
        const joined = (last + (ch === "゛" ? "\u3099" : "\u309a")).normalize("NFC");
        if (last && joined.length === 1) s.name = s.name.slice(0, -1) + joined;
      } else if (s.name.length < MAX_NAME) s.name += ch;
      value.textContent = s.name || "　";
    };
    return [[...heading(t("name_title")),
      el("p", { class: "name-box" }, value),
      el("div", { class: "kana", role: "group", "aria-label": t("kana_group") },
        KANA.map((ch) => btn({ dataset: { kana: ch }, onclick: () => add(ch) }, ch))),
      el("div", { class: "nav" },
        btn({ id: "name-del", onclick: () => { s.name = s.name.slice(0, -1); value.textContent = s.name || "　"; } }, t("name_del")),
        btn({ id: "name-none", onclick: () => { s.name = ""; ask("confirm"); } }, t("name_none")),
        btn({ class: "primary", id: "name-ok", onclick: () => ask("confirm") }, t("name_ok"))),
      nav(() => go("confirm"))], t("name_say")];
  },
  done(s) {
    const b = s.booking;
    return [[el("div", { class: "result", role: "status" },
      el("h1", { id: "step-title", tabindex: "-1" }, icon("check", 56), t("done_title")),
      el("p", {}, t("done_wait")),
      el("p", { class: "huge", id: "result-window" }, `${fmtTime(b.pickup_window_start)} 〜 ${fmtTime(b.pickup_window_end)}`),
      el("p", {}, t("done_detail", { day: dayText(b.pickup_window_start), to: stopName(b.destination.stop_id), n: b.party_size })),
      el("p", { class: "number-label" }, t("number")),
      el("p", { class: "number", id: "booking-number" }, b.number),
      el("p", {}, t("number_hint"))),
      el("div", { class: "nav" }, btn({ class: "primary", id: "finish", onclick: start }, t("finish")))],
    t("done_say", { spelled: spell(b.number), win: win(b.pickup_window_start, b.pickup_window_end), to: stopName(b.destination.stop_id) })];
  },
  noride(s) {
    const alts = [...(s.noride.alternatives || [])].sort((a, b) => new Date(a) - new Date(b));
    const cause = causeText(s.noride.cause, isEn() ? "en" : "ja");
    return [[el("h1", { id: "step-title", tabindex: "-1" }, t("noride_title")),
      el("p", { class: "alert", role: "alert", id: "cause" }, cause),
      alts.length ? el("h2", {}, t("alt_title")) : el("p", {}, t("alt_none")),
      el("div", { class: "grid" }, alts.map((iso) => btn({
        class: "alt", dataset: { time: iso }, onclick: () => { s.when = iso; ask(); },
      }, t("alt_go", { t: fmtTime(iso) })))),
      nav(() => go("when"))], `${cause}${alts.length ? t("alt_say", { t: fmtTime(alts[0]) }) : ""}`];
  },
  busy() {
    return [[el("h1", { id: "step-title", tabindex: "-1", role: "status" }, t("busy"))], t("busy_say")];
  },
  lookup(s) {
    const input = el("input", { id: "lookup-number", name: "number", autocomplete: "off", maxlength: "8",
      value: s.number, "aria-describedby": "kiosk-error", class: "number-input",
      oninput: (e) => { s.number = e.target.value.toUpperCase(); } });
    const press = (ch) => { if (s.number.length < 6) { s.number += ch; input.value = s.number; } };
    return [[...heading(t("lookup_title")),
      el("form", { class: "stack", onsubmit: (e) => { e.preventDefault(); lookUp(); } },
        el("label", { for: "lookup-number" }, t("lookup_label")), input,
        el("div", { class: "keypad", role: "group", "aria-label": t("keypad_group") },
          NUMBER_CHARS.map((ch) => btn({ dataset: { key: ch }, onclick: () => press(ch) }, ch))),
        el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error || ""),
        el("div", { class: "nav" },
          btn({ id: "lookup-del", onclick: () => { s.number = s.number.slice(0, -1); input.value = s.number; } }, t("name_del")),
          el("button", { type: "submit", class: "primary", id: "lookup-go" }, icon("search"), t("lookup_go")))),
      nav(() => go("dest"))], t("lookup_say")];
  },
  found(s) {
    const b = s.found;
    const status = STATUS_TEXT[b.status] ? STATUS_TEXT[b.status][kl] : b.status;
    const cancellable = b.status === "confirmed" || b.status === "arriving";
    return [[...heading(t("found_title")),
      el("div", { class: "summary", id: "found" },
        el("p", {}, `${t("number")} `, el("strong", { class: "number-inline" }, b.number)),
        el("p", { class: "huge" }, `${fmtTime(b.pickup_window_start)} 〜 ${fmtTime(b.pickup_window_end)}`),
        el("p", {}, `${dayText(b.pickup_window_start)} ・ ${stopName(b.origin.stop_id)} → ${stopName(b.destination.stop_id)} ・ ${t("party_n", { n: b.party_size })}`),
        el("p", { id: "found-status" }, t("status_row", { status }))),
      el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error || ""),
      cancellable ? el("div", { class: "nav" }, btn({ class: "danger", id: "cancel-booking", onclick: () => go("cancel_q") }, t("cancel_booking"))) : null,
      nav(() => go("lookup"))],
    t("found_say", { spelled: spell(b.number), win: win(b.pickup_window_start, b.pickup_window_end), from: stopName(b.origin.stop_id), to: stopName(b.destination.stop_id), status })];
  },
  cancel_q(s) {
    return [[...heading(t("cancel_q")),
      el("p", { class: "number", id: "cancel-number" }, s.found.number),
      el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error || ""),
      el("div", { class: "nav" },
        btn({ class: "danger primary", id: "cancel-yes", onclick: cancelFound }, t("cancel_yes")),
        btn({ id: "cancel-no", onclick: () => go("found") }, t("cancel_no")))], t("cancel_q_say")];
  },
  cancelled(s) {
    return [[el("div", { class: "result", role: "status" },
      el("h1", { id: "step-title", tabindex: "-1" }, icon("check", 56), t("cancelled_title")),
      el("p", { class: "number" }, s.found.number)),
      el("div", { class: "nav" }, btn({ class: "primary", id: "finish", onclick: start }, t("finish")))], t("cancelled_say")];
  },
};

// The delivery steps share one screen function (below).
for (const step of ["dl_store", "dl_list", "dl_when", "dl_confirm", "dl_done"]) {
  SCREENS[step] = (s) => { const body = []; const say = deliveryScreen(s, body); return [body, say]; };
}

function render() {
  const s = st;
  const [body, say, focus] = SCREENS[s.step](s);
  if (s.error && !body.flat().some((n) => n && n.id === "kiosk-error") && !["confirm", "card", "lookup", "found", "cancel_q", "dl_confirm"].includes(s.step)) {
    body.push(el("div", { class: "alert", role: "alert", id: "kiosk-error" }, s.error));
  }
  root.dataset.step = s.step;
  root.replaceChildren(...body.filter(Boolean));
  const target = document.querySelector(focus || "#step-title");
  if (target) target.focus();
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
    el("p", {}, `予約番号 ${b.number}`)),
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
  return el("div", { class: "grid" }, out.map((iso) => btn({
    class: "slot", dataset: { time: iso }, onclick: () => { st.when = iso; ask(); },
  }, day === tokyoDate() && tokyoDate(new Date(iso)) === tokyoDate() ? fmtTime(iso) : fmtDayTime(iso, isEn() ? "en" : "ja"))));
}

function request() {
  const req = {
    origin: { stop_id: me.stop_id }, destination: { stop_id: st.destination },
    time_mode: st.when ? "leave_at" : "now", party_size: st.party, wheelchairs: st.wheelchair ? 1 : 0,
  };
  if (st.when) req.time = st.when;
  if (st.card) req.rider_card = st.card;
  else if (st.name) req.passenger_name = st.name;
  return req;
}

const errText = (e) => (e.text ? e.text(isEn() ? "en" : "ja") : String(e));

// Ask for an offer (again, when the card or the name changed: they belong to the request).
async function ask(back = "when") {
  const s = st;
  const from = s.step;
  go("busy");
  try {
    s.offer = await api.offer(request());
    s.key = newKey();
    go("confirm");
  } catch (e) {
    if (s !== st) return;
    if (e.code === "NoRideAvailable") { s.noride = e.body; go("noride"); return; }
    s.error = errText(e);
    s.step = e.code === "UnknownRiderCard" ? "card" : (from === "name" ? "name" : back);
    if (e.code === "UnknownRiderCard") s.card = "";
    render();
  }
}

// A QR code on a rider card carries "OKUMA-CARD:<number>"; a card reader types the number itself.
function cardNumber(text) {
  const v = text.trim().replace(/^OKUMA-CARD:/i, "").toUpperCase();
  return /^[A-Z0-9-]{1,32}$/.test(v) ? v : null;
}

function useCard() {
  const n = cardNumber(st.card);
  if (!n) { st.error = t("card_bad"); render(); return; }
  st.card = n;
  ask("confirm");
}

let confirming = false;
async function confirm() {
  if (confirming) return;
  confirming = true;
  const s = st;
  document.getElementById("confirm").disabled = true;
  try {
    s.booking = await api.confirm(s.offer.offer_id, s.key);
    go("done");
  } catch (e) {
    if (e.code === "NoRideAvailable") { s.noride = e.body; go("noride"); }
    else { s.error = errText(e); render(); }
  } finally {
    confirming = false;
  }
}

async function lookUp() {
  const s = st;
  try {
    s.found = await api.request("GET", `/api/v1/bookings/by-number/${encodeURIComponent(s.number.trim())}`);
    go("found");
  } catch (e) {
    s.error = errText(e);
    render();
  }
}

async function cancelFound() {
  const s = st;
  document.getElementById("cancel-yes").disabled = true;
  try {
    s.found = await api.cancel(s.found.id, "kiosk");
    go("cancelled");
  } catch (e) {
    s.error = errText(e);
    render();
  }
}

async function refreshApproaching() {
  try {
    approaching = await api.request("GET", `/api/v1/stops/${encodeURIComponent(me.stop_id)}/approaching`);
  } catch {
    return; // a courtesy: the kiosk books without it
  }
  const box = document.querySelector(".approaching");
  if (box && st && st.step === "dest") box.replaceWith(approachingBox());
}

function start() {
  closeWarn();
  st = fresh();
  setKioskLang("ja");
  render();
}

function setup(message) {
  root.replaceChildren(el("form", { class: "setup stack", onsubmit: async (e) => {
    e.preventDefault();
    setToken("kiosk", document.getElementById("kiosk-token").value);
    try { await boot(); } catch (err) { clearToken("kiosk"); setup(errText(err)); }
  } },
  el("h1", {}, t("setup_title")),
  el("p", {}, t("setup_text")),
  el("label", { for: "kiosk-token" }, t("setup_label")),
  el("input", { id: "kiosk-token", name: "token", autocomplete: "off", required: true }),
  el("div", { class: "alert", role: "alert" }, message || ""),
  el("button", { type: "submit", class: "primary" }, t("setup_go"))));
  document.getElementById("kiosk-token").focus();
}

async function boot() {
  me = await api.me();
  if (me.role !== "kiosk" || !me.stop_id) throw Object.assign(new Error("role"), { text: () => t("not_kiosk") });
  [stops, service] = await Promise.all([api.stops(), api.request("GET", "/api/v1/service")]);
  stores = await api.request("GET", "/api/v1/stores");
  byId = new Map(stops.map((x) => [x.id, x]));
  start();
  refreshApproaching();
  setInterval(refreshApproaching, APPROACH_MS);
}

drawHeader();
if (getToken("kiosk")) boot().catch((e) => setup(errText(e)));
else setup();
