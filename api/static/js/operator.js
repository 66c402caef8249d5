// Operator console: phone booking for a caller, today's bookings with cancel, KPIs, an SVG map.
// Live updates come over /ws/operator; while that link is down the console polls every REFRESH_MS.
import { Api, ApiError, getToken, setToken, clearToken, newKey, tokyoDate, tokyoIso, fmtTime, fmtDayTime, serviceNow, causeText, statusText, ZONES, addDays, tokyoMinutes, hm } from "./api.js";
import { el, lang, translator } from "./i18n.js";
import { icon } from "./icons.js";

const api = new Api("operator");
const root = document.getElementById("main");
const REFRESH_MS = 20000; // polling while the live channel is down
const LIVE_POLL_MS = 60000; // a rare safety-net refresh while it is up
const LIVE_DEBOUNCE_MS = 300; // a burst of live messages makes one refresh
const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000];
const SILENT_MS = 45000; // the server pings every 15 s: three missed = the link is dead
const PAGE = 50; // bookings per page of the table
const POINT = "__point__"; // the stop list's "an address (pin on the map)" choice
let stops = [];
let byId = new Map();
let stores = []; // GET /api/v1/stores: the names of the stores that send groceries
// Handover codes the desk asked for with 「受け渡しコードを読み上げる」 (GET /api/v1/deliveries/{id}):
// the only place the console shows a code, and only until 「隠す」.
const revealed = new Map();
let pending = null; // {offer, key, request}
let confirmingCancel = null;
let vehiclesAvailable = true;
let lastVehicles = null; // the fleet as last drawn (REST, then live `vehicle` messages)
let bookingsById = new Map();
const atRisk = new Map(); // booking id -> the promise_at_risk message
// The table's search: a day (Tokyo), text (number, name or phone), status, vehicle, page.
const filters = { day: tokyoDate(), q: "", status: "", vehicle_id: "", offset: 0 };
// Door-to-door places being entered: {origin: {lat, lon}, destination: …}; `pinFor` is where a map click goes.
const pins = {};
let pinFor = null;
let projection = null; // the map's current lat/lon ↔ SVG coordinates

// Texts of the live channel: Japanese first, the other language beside it.
const TEXTS = {
  connecting: { ja: "ライブ接続中…", en: "Connecting…" },
  live: { ja: "ライブ更新中", en: "Live" },
  reconnecting: { ja: "再接続中… ({s}秒ごとに自動更新)", en: "Reconnecting… (refreshing every {s} s)" },
  refused: { ja: "ライブ更新できません ({s}秒ごとに自動更新)", en: "Live updates refused (refreshing every {s} s)" },
  riskTitle: { ja: "遅れの恐れ", en: "Promise at risk" },
  risk: {
    ja: "{name} 様(予約 {id})がお約束の時刻に遅れそうです。見込み {expected}(お約束 {promised} まで、約{min}分遅れ)・車両 {vehicle}",
    en: "{name} (booking {id}) may miss the promised time: expected {expected} (promised by {promised}, about {min} min late) · vehicle {vehicle}",
  },
  riskBadge: { ja: "遅れの恐れ", en: "at risk" },
  dismiss: { ja: "閉じる", en: "Dismiss" },
};
const other = () => (lang() === "en" ? "ja" : "en");
const tx = translator(TEXTS);
// "ライブ更新中 / Live": the chosen language first, the other one marked with its lang.
const both = (key, vars = {}) => [tx(key, vars), " / ", el("span", { lang: other() }, tx(key, vars, other()))];

const name = (id) => (byId.get(id) || { name_ja: id || "—" }).name_ja;
// A place of a booking: its stop's name, or for door-to-door the address (or the point, if none was given).
const placeName = (p) => (p.stop_id ? name(p.stop_id) : p.address || `地点 ${p.lat.toFixed(4)}, ${p.lon.toFixed(4)}`);
const vehicleName = (id) => {
  if (!id) return "—";
  const v = (lastVehicles || []).find((x) => x.vehicle_id === id);
  return v ? (lang() === "en" ? v.name_en : v.name_ja) || id : id;
};
const warnIcon = () => icon("warning", 20);
const errText = (e) => (e instanceof ApiError ? e.text("ja") : String(e));

function stopSelect(id, label) {
  const sel = el("select", { id, name: id, required: true }, el("option", { value: "" }, "選んでください"));
  for (const zone of Object.keys(ZONES)) {
    const g = el("optgroup", { label: ZONES[zone].ja });
    for (const s of stops.filter((x) => x.zone === zone)) g.append(el("option", { value: s.id }, `${s.name_ja}(${s.name_kana})`));
    sel.append(g);
  }
  sel.append(el("option", { value: POINT }, "住所(地図で位置を指定)— ドアツードア"));
  // Door-to-door: the address as told, and the position by a click on the map or typed in.
  const box = el("div", { class: "point-box", id: `${id}-point`, hidden: true },
    el("label", { for: `${id}-address` }, "住所"),
    el("input", { id: `${id}-address`, name: `${id}-address`, autocomplete: "off", maxlength: "200" }),
    el("p", { class: "muted", id: `${id}-pin-help` }, "地図をクリックすると位置が入ります(緯度・経度を直接入れても構いません)。"),
    el("div", { class: "grid2" },
      el("div", {}, el("label", { for: `${id}-lat` }, "緯度"), el("input", { id: `${id}-lat`, name: `${id}-lat`, inputmode: "decimal", autocomplete: "off", "aria-describedby": `${id}-pin-help` })),
      el("div", {}, el("label", { for: `${id}-lon` }, "経度"), el("input", { id: `${id}-lon`, name: `${id}-lon`, inputmode: "decimal", autocomplete: "off", "aria-describedby": `${id}-pin-help` }))),
    el("button", { type: "button", id: `${id}-pin`, "aria-pressed": "false", onclick: () => armPin(id) }, icon("pin", 22), "地図で位置を指定する"));
  const typed = () => {
    const lat = Number(box.querySelector(`#${id}-lat`).value);
    const lon = Number(box.querySelector(`#${id}-lon`).value);
    if (box.querySelector(`#${id}-lat`).value && box.querySelector(`#${id}-lon`).value && Number.isFinite(lat) && Number.isFinite(lon)) pins[id] = { lat, lon };
    else delete pins[id];
    drawMap(lastVehicles);
  };
  box.querySelector(`#${id}-lat`).addEventListener("input", typed);
  box.querySelector(`#${id}-lon`).addEventListener("input", typed);
  sel.addEventListener("change", () => {
    box.hidden = sel.value !== POINT;
    if (box.hidden) { delete pins[id]; if (pinFor === id) armPin(null); drawMap(lastVehicles); }
  });
  return [el("label", { for: id }, label), sel, box];
}

// The next click on the map sets the pin of `which` (origin or destination); null stops that.
function armPin(which) {
  pinFor = pinFor === which ? null : which;
  for (const b of document.querySelectorAll("[id$='-pin']")) b.setAttribute("aria-pressed", String(b.id === `${pinFor}-pin`));
  const hint = document.getElementById("map-hint");
  if (hint) hint.textContent = pinFor ? `地図をクリックして「${pinFor === "origin" ? "乗る場所" : "降りる場所"}」の位置を指定してください。` : "";
}

function setPin(which, lat, lon) {
  pins[which] = { lat, lon };
  document.getElementById(`${which}-lat`).value = lat.toFixed(5);
  document.getElementById(`${which}-lon`).value = lon.toFixed(5);
  armPin(null);
  drawMap(lastVehicles);
}

function bookingForm() {
  const alert = el("div", { class: "alert", role: "alert", id: "phone-error" });
  const result = el("div", { id: "phone-result", "aria-live": "polite" });
  const today = tokyoDate();
  const open = serviceNow();
  const defaultDay = open.open ? today : open.day;
  const defaultTime = open.open ? hm(Math.min(Math.ceil((tokyoMinutes() + 30) / 15) * 15, 19 * 60 + 45)) : open.time;
  const days = el("select", { id: "day", name: "day" });
  for (let i = 0; i < 7; i++) {
    const d = addDays(today, i);
    days.append(el("option", { value: d, selected: d === defaultDay }, fmtDayTime(tokyoIso(d, "12:00"), "ja").split(" ")[0]));
  }
  const form = el("form", { id: "phone-form", novalidate: true },
    el("h2", { id: "phone-h" }, "電話予約"),
    el("div", { class: "grid2" },
      el("div", {}, el("label", { for: "caller" }, "お名前"), el("input", { id: "caller", name: "caller", autocomplete: "off", required: true })),
      el("div", {}, el("label", { for: "phone" }, "電話番号"), el("input", { id: "phone", name: "phone", type: "tel", inputmode: "tel", autocomplete: "off" }))),
    el("div", {}, ...stopSelect("origin", "乗る場所")),
    el("div", {}, ...stopSelect("destination", "降りる場所")),
    el("fieldset", {}, el("legend", {}, "時刻"),
      el("label", { for: "mode" }, "指定方法"),
      el("select", { id: "mode", name: "mode" },
        el("option", { value: "leave_at" }, "出発時刻"),
        el("option", { value: "arrive_by" }, "到着時刻"),
        el("option", { value: "now" }, "今すぐ")),
      el("div", { class: "grid2" },
        el("div", {}, el("label", { for: "day" }, "日にち"), days),
        el("div", {}, el("label", { for: "time" }, "時刻"), el("input", { id: "time", name: "time", type: "time", min: "07:00", max: "20:00", step: "300", value: defaultTime })))),
    el("div", { class: "grid2" },
      el("div", {}, el("label", { for: "party" }, "人数"), el("input", { id: "party", name: "party", type: "number", min: "1", max: "6", value: "1", inputmode: "numeric" })),
      el("div", {}, el("label", { for: "wheelchairs" }, "車いす(台)"), el("input", { id: "wheelchairs", name: "wheelchairs", type: "number", min: "0", max: "6", value: "0", inputmode: "numeric" }))),
    el("div", {}, el("label", { for: "note" }, "運転士へのメモ(任意・ドアツードア向け)"),
      el("input", { id: "note", name: "note", autocomplete: "off", maxlength: "200" })),
    alert,
    el("p", {}, el("button", { type: "submit", class: "primary", id: "get-offer" }, "空きを調べる")),
    result);

  const v = (id) => form.querySelector(`#${id}`).value.trim();
  async function search(timeIso) {
    alert.textContent = "";
    result.replaceChildren();
    pending = null;
    const caller = v("caller");
    const problems = [];
    if (!caller) problems.push("お名前を入れてください。");
    if (!v("origin") || !v("destination")) problems.push("乗る場所と降りる場所を選んでください。");
    else if (v("origin") === v("destination") && v("origin") !== POINT) problems.push("乗る場所と降りる場所が同じです。");
    for (const which of ["origin", "destination"]) {
      if (v(which) !== POINT) continue;
      if (!pins[which]) problems.push(`${which === "origin" ? "乗る場所" : "降りる場所"}の位置を地図で指定してください。`);
      if (!v(`${which}-address`)) problems.push(`${which === "origin" ? "乗る場所" : "降りる場所"}の住所を入れてください。`);
    }
    const mode = timeIso ? "leave_at" : v("mode");
    if (mode !== "now" && !timeIso && !v("time")) problems.push("時刻を入れてください。");
    if (problems.length) { alert.textContent = problems.join(" "); return; }
    const place = (which) => (v(which) === POINT
      ? { lat: pins[which].lat, lon: pins[which].lon, address: v(`${which}-address`) }
      : { stop_id: v(which) });
    const req = {
      origin: place("origin"), destination: place("destination"),
      time_mode: mode, party_size: Number(v("party") || 1), wheelchairs: Number(v("wheelchairs") || 0),
      passenger_name: caller,
    };
    if (v("phone")) req.contact_phone = v("phone");
    if (v("note")) req.driver_note = v("note");
    if (mode !== "now") req.time = timeIso || tokyoIso(v("day"), v("time"));
    const btn = form.querySelector("#get-offer");
    btn.disabled = true;
    try {
      const offer = await api.offer(req);
      pending = { offer, key: newKey(), request: req };
      showOffer();
    } catch (e) {
      if (e.code === "NoRideAvailable") {
        const alts = [...(e.body.alternatives || [])].sort((a, b) => new Date(a) - new Date(b));
        result.append(el("div", { class: "alert", role: "alert", id: "no-ride" },
          el("p", {}, causeText(e.body.cause, "ja")),
          alts.length ? el("p", {}, "乗れる時刻:") : null,
          el("div", { class: "row" }, alts.map((iso) => el("button", { type: "button", class: "alt", onclick: () => search(iso) }, `${fmtDayTime(iso, "ja")} 出発で調べる`)))));
      } else alert.textContent = errText(e);
    } finally {
      btn.disabled = false;
    }
  }

  function showOffer() {
    const o = pending.offer;
    const btn = el("button", { type: "button", class: "primary", id: "confirm" }, "この内容で予約を確定");
    btn.addEventListener("click", async () => {
      if (btn.disabled) return;
      btn.disabled = true;
      try {
        const b = await api.confirm(o.offer_id, pending.key);
        pending = null;
        result.replaceChildren(el("p", { role: "status", id: "booked" },
          `予約しました: ${b.passenger_name} 様 ${fmtDayTime(b.pickup_window_start, "ja")}〜${fmtTime(b.pickup_window_end)}(予約番号 `,
          el("strong", { id: "booked-number", class: "number" }, b.number),
          ")。お客様に迎えの時間と予約番号をお伝えください。"));
        for (const id of ["caller", "phone", "note", "origin-address", "destination-address", "origin-lat", "origin-lon", "destination-lat", "destination-lon"]) {
          form.querySelector(`#${id}`).value = "";
        }
        for (const which of ["origin", "destination"]) delete pins[which];
        await refresh();
      } catch (e) {
        btn.disabled = false;
        alert.textContent = errText(e);
      }
    });
    result.replaceChildren(el("div", { class: "offer-box", id: "offer" },
      el("p", {}, "迎えの時間(お客様にお伝えください)"),
      el("p", { class: "big", id: "offer-window" }, `${fmtDayTime(o.pickup_window_start, "ja")} 〜 ${fmtTime(o.pickup_window_end)}`),
      el("p", {}, `${placeName(o.origin)} → ${placeName(o.destination)} ・ ${o.party_size}人 ・ 遅くとも ${fmtTime(o.latest_dropoff)} 到着 ・ 運賃 ${o.fare_yen}円`),
      el("p", { class: "muted" }, `${fmtTime(o.expires_at)} まで有効`),
      el("div", { class: "row" }, btn, el("button", { type: "button", onclick: () => { pending = null; result.replaceChildren(); } }, "やめる"))));
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); search(null); });
  return el("section", { class: "panel", "aria-labelledby": "phone-h" }, form);
}

// ---- family links at the town desk (docs/pages.md): a resident links a family member after the
// member's consent given here in person; the desk lists and ends links.
function familyDesk() {
  const alert = el("div", { class: "alert", role: "alert", id: "desk-error" });
  const status = el("p", { role: "status", id: "desk-status" });
  const found = el("div", { id: "desk-found" });
  let resident = null; // {account_id, name, phone_masked, links}
  let phone = ""; // the resident's number as typed (to look them up again and to link)
  let ending = null; // the link whose end is being confirmed

  const find = async () => {
    alert.textContent = "";
    try {
      resident = await api.deskLookup(phone);
    } catch (e) {
      resident = null;
      alert.textContent = errText(e);
    }
    draw();
  };

  const draw = () => {
    if (!resident) { found.replaceChildren(); return; }
    const links = resident.links.map((f) => {
      const who = f.role === "guardian" ? `${f.name} 様 — ${resident.name} 様が代わりに予約できます` : `${f.name} 様 — ${resident.name} 様の代わりに予約できます`;
      const how = f.consent === "desk" ? "窓口で同意" : "確認コードで同意";
      const buttons = ending === f.link_id
        ? [el("button", { type: "button", class: "danger primary", id: "desk-unlink-yes", onclick: async () => {
          try { await api.unlinkFamily(f.link_id); status.textContent = `${f.name} 様との連携をやめました。`; } catch (e) { alert.textContent = errText(e); }
          ending = null;
          await find();
        } }, "本当にやめる"), " ", el("button", { type: "button", id: "desk-unlink-no", onclick: () => { ending = null; draw(); } }, "やめない")]
        : [el("button", { type: "button", class: "danger", dataset: { unlink: f.link_id }, "aria-label": `${f.name} 様との連携をやめる`,
          onclick: () => { ending = f.link_id; draw(); document.getElementById("desk-unlink-yes").focus(); } }, "連携をやめる")];
      return el("li", { dataset: { link: f.link_id } }, el("span", {}, who), " ", el("span", { class: "muted" }, `(${how}・${fmtDayTime(f.since, "ja")}から)`), " ", ...buttons);
    });
    const memberName = el("input", { id: "desk-member-name", name: "member-name", autocomplete: "off", maxlength: "100" });
    const memberPhone = el("input", { id: "desk-member-phone", name: "member-phone", type: "tel", inputmode: "tel", autocomplete: "off" });
    const consent = el("input", { type: "checkbox", id: "desk-consent", name: "consent" });
    const link = el("form", { id: "desk-link-form", novalidate: true, class: "stack" },
      el("h3", {}, `${resident.name} 様が予約するご家族を追加`),
      el("div", { class: "grid2" },
        el("div", {}, el("label", { for: "desk-member-name" }, "ご家族のお名前"), memberName),
        el("div", {}, el("label", { for: "desk-member-phone" }, "ご家族の電話番号"), memberPhone)),
      el("div", { class: "check" }, consent,
        el("label", { for: "desk-consent" }, "ご家族ご本人が窓口で、代わりの予約と乗車のお知らせに同意されたことを確認しました")),
      el("p", {}, el("button", { type: "submit", class: "primary", id: "desk-link" }, "連携する")));
    link.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      alert.textContent = "";
      const problems = [];
      if (!memberName.value.trim()) problems.push("ご家族のお名前を入れてください。");
      if (!memberPhone.value.trim()) problems.push("ご家族の電話番号を入れてください。");
      if (!consent.checked) problems.push("ご本人の同意を確認してから連携してください。");
      if (problems.length) { alert.textContent = problems.join(" "); return; }
      try {
        await api.deskLink(phone, memberPhone.value.trim(), memberName.value.trim());
        status.textContent = `${resident.name} 様と ${memberName.value.trim()} 様を連携しました。`;
        await find();
      } catch (e) { alert.textContent = errText(e); }
    });
    found.replaceChildren(
      el("p", { id: "desk-resident" }, el("strong", {}, `${resident.name} 様`), ` (電話 ${resident.phone_masked})`),
      el("h3", {}, "連携しているご家族"),
      links.length ? el("ul", { id: "desk-links", class: "desk-links" }, links) : el("p", { id: "desk-links-none" }, "連携しているご家族はいません。"),
      link);
  };

  const phoneIn = el("input", { id: "desk-phone", name: "desk-phone", type: "tel", inputmode: "tel", autocomplete: "off", "aria-describedby": "desk-help" });
  const search = el("form", { id: "desk-search", role: "search", "aria-label": "利用者の検索(家族の連携)", novalidate: true },
    el("p", { class: "muted", id: "desk-help" }, "予約をする方(ご家族の代わりに予約する方)の電話番号で探します。アプリで一度ログインした方が対象です。"),
    el("label", { for: "desk-phone" }, "予約をする方の電話番号"), phoneIn,
    el("p", {}, el("button", { type: "submit", id: "desk-find" }, icon("search", 20), "探す")));
  search.addEventListener("submit", (ev) => {
    ev.preventDefault();
    phone = phoneIn.value.trim();
    status.textContent = "";
    ending = null;
    if (!phone) { alert.textContent = "電話番号を入れてください。"; resident = null; draw(); return; }
    find();
  });
  return el("section", { class: "panel", id: "family-desk", "aria-labelledby": "desk-h" },
    el("h2", { id: "desk-h" }, "家族の連携(窓口)"), search, alert, status, found);
}

// ---- today's bookings, KPIs, map
const kpis = el("ul", { class: "kpis", id: "kpis" });
const tbody = el("tbody", { id: "bookings-body" });
const tableAlert = el("div", { class: "alert", role: "alert", id: "table-error" });
const mapBox = el("div", { id: "map-box" });

// A delivery's status in the goods' words (docs/goods.md), and its temperature.
const DELIVERY_STATUS = {
  ordered: "お店で準備中", ready: "準備済み・ミニバス待ち", picked_up: "お届け中", delivered: "お届け済み",
  returning: "お店へ戻し中", returned: "戻し済み", locked: "受け渡し停止(コード誤り)", cancelled: "取り消し済み",
};
const TEMPERATURE = { chilled: "冷蔵", frozen: "冷凍", ambient: "常温" };
const CODE_LIVE = new Set(["ordered", "ready", "picked_up"]);
const storeName = (id) => (stores.find((x) => x.id === id) || { name_ja: id }).name_ja;

// The desk reads the code out to the recipient on the phone: fetched on this explicit action only.
async function readOut(b) {
  try {
    const d = await api.delivery(b.id);
    if (d.handover_code) revealed.set(b.id, d.handover_code);
  } catch (e) {
    tableAlert.textContent = errText(e);
  }
  await refresh();
  const shown = tbody.querySelector(`[data-code-for="${CSS.escape(b.id)}"]`);
  if (shown) shown.focus();
}

function deliveryCells(b) {
  const d = b.delivery || {};
  const cell = el("td", {});
  if (CODE_LIVE.has(d.status)) {
    if (revealed.has(b.id)) {
      cell.append(el("p", { class: "readout", tabindex: "-1", dataset: { codeFor: b.id } },
        "受け渡しコード ", el("strong", { class: "code" }, revealed.get(b.id)), el("br"),
        el("span", { class: "muted" }, "受け取るご本人にだけ読み上げてください(運転士には伝えない)")),
      el("button", { type: "button", "aria-label": `${b.passenger_name} 様の受け渡しコードを隠す`, onclick: () => { revealed.delete(b.id); refresh(); } }, "隠す"));
    } else {
      cell.append(el("button", { type: "button", class: "readout-btn", dataset: { readout: b.id },
        "aria-label": `${b.passenger_name} 様の受け渡しコードを読み上げる(電話のお客様ご本人へ)`, onclick: () => readOut(b) }, "コードを読み上げる"));
    }
  } else revealed.delete(b.id);
  return {
    route: [el("strong", {}, "お買い物 "), `${storeName(d.store_id)} → ${placeName(b.destination)}`,
      d.order_number ? ` ・ 注文 ${d.order_number}` : "", d.shopping_list ? ` ・ ${d.shopping_list}` : ""],
    load: `荷物 ${d.parcels || b.parcels}個 ・ ${TEMPERATURE[d.temperature] || d.temperature || "—"}`,
    status: DELIVERY_STATUS[d.status] || statusText(b.status, "ja"),
    action: cell,
  };
}

function row(b) {
  const parcel = b.kind === "delivery" ? deliveryCells(b) : null;
  const cancellable = (b.status === "confirmed" || b.status === "arriving")
    && (!parcel || ["ordered", "ready"].includes((b.delivery || {}).status));
  const cell = parcel ? parcel.action : el("td", {});
  if (cancellable) {
    if (confirmingCancel === b.id) {
      cell.append(
        el("button", { type: "button", class: "danger primary", "aria-label": `${b.passenger_name} 様の予約を本当に取り消す`, onclick: () => cancel(b.id) }, "本当に取消"),
        " ",
        el("button", { type: "button", onclick: () => { confirmingCancel = null; refresh(); } }, "やめる"));
    } else {
      cell.append(el("button", { type: "button", class: "danger", "aria-label": `${b.passenger_name} 様の予約を取り消す`, onclick: () => { confirmingCancel = b.id; refresh(); } }, "取消"));
    }
  }
  const win = parcel && b.delivery.window_start
    ? `${fmtTime(b.delivery.window_start)}〜${fmtTime(b.delivery.window_end)} 着`
    : `${fmtTime(b.pickup_window_start)}〜${fmtTime(b.pickup_window_end)}`;
  return el("tr", { class: `${b.status}${parcel ? " delivery" : ""}`, dataset: { booking: b.id, kind: b.kind } },
    el("td", { class: "number" }, b.number),
    el("td", {}, win),
    el("td", {}, b.passenger_name || "(名前なし)"),
    el("td", {}, parcel ? parcel.route : `${placeName(b.origin)} → ${placeName(b.destination)}`),
    el("td", {}, parcel ? parcel.load : `${b.party_size}${b.wheelchairs ? ` (車いす${b.wheelchairs})` : ""}`),
    el("td", { class: "status" }, parcel ? parcel.status : statusText(b.status, "ja"),
      atRisk.has(b.id) ? el("strong", { class: "risk-badge" }, " ", warnIcon(), tx("riskBadge")) : null),
    el("td", {}, vehicleName(b.vehicle_id)),
    el("td", {}, { app: "アプリ", kiosk: "端末", phone: "電話" }[b.channel] || b.channel),
    cell);
}

async function cancel(id) {
  try {
    await api.cancel(id, "operator");
    confirmingCancel = null;
  } catch (e) {
    tableAlert.textContent = errText(e);
  }
  await refresh();
}

// Label boxes placed so far; a label takes the first of eight places around its point that overlaps none.
function placeLabel(placed, px, py, text, size = 12, W = 800, H = 560) {
  const w = text.length * size + 4;
  const h = size + 4;
  const spots = [[10, -h / 2], [-10 - w, -h / 2], [-w / 2, -h - 8], [-w / 2, 8], [10, -h - 4], [10, 4], [-10 - w, -h - 4], [-10 - w, 4]];
  for (const [dx, dy] of spots) {
    const box = [px + dx, py + dy, px + dx + w, py + dy + h];
    if (box[0] < 2 || box[1] < 2 || box[2] > W - 2 || box[3] > H - 2) continue; // inside the map
    if (!placed.some((b) => box[0] < b[2] && b[0] < box[2] && box[1] < b[3] && b[1] < box[3])) {
      placed.push(box);
      return { x: box[0] + 2, y: box[3] - 4 };
    }
  }
  return null; // no free place: the name stays in the point's tooltip and the legend list
}

function drawMap(vehicles) {
  const pinned = Object.values(pins);
  const pts = stops.map((s) => [s.lat, s.lon]).concat((vehicles || []).filter((v) => v.lat != null).map((v) => [v.lat, v.lon]), pinned.map((p) => [p.lat, p.lon]));
  const lats = pts.map((p) => p[0]);
  const lons = pts.map((p) => p[1]);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const W = 800;
  const H = 560;
  const pad = 48;
  const kx = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180); // equirectangular, good enough for a town
  const sx = (W - 2 * pad) / ((maxLon - minLon) * kx || 1);
  const sy = (H - 2 * pad) / (maxLat - minLat || 1);
  const k = Math.min(sx, sy);
  const x = (lon) => pad + (lon - minLon) * kx * k;
  const y = (lat) => H - pad - (lat - minLat) * k;
  projection = { toLon: (px) => minLon + (px - pad) / (kx * k), toLat: (py) => minLat + (H - pad - py) / k };
  const NS = "http://www.w3.org/2000/svg";
  const s = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [a, v] of Object.entries(attrs)) e.setAttribute(a, v);
    if (text) e.textContent = text;
    return e;
  };
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: `map${pinFor ? " picking" : ""}`, role: "img", "aria-labelledby": "map-title map-desc" });
  const moving = (vehicles || []).filter((v) => v.lat != null && v.lon != null);
  svg.append(s("title", { id: "map-title" }, "停留所と車両の地図"),
    s("desc", { id: "map-desc" }, `停留所 ${stops.length} か所${vehicles ? `、車両 ${moving.length} 台(${moving.map((v) => v.name_ja || v.vehicle_id).join("、")})` : ""}。北が上。`));
  const placed = [];
  const colour = { ogawara: "#0b4f8a", ono: "#7a2a8c", other: "#3d3d3d" };
  // Points first, so that no label covers a stop; kiosk stops (the main ones) get their labels first.
  for (const st of stops) {
    const r = st.kiosk ? 7 : 5;
    placed.push([x(st.lon) - r, y(st.lat) - r, x(st.lon) + r, y(st.lat) + r]);
  }
  // Vehicles at nearly the same place (the depot) are spread on a ring, each with a line to the spot.
  const groups = [];
  for (const v of moving) {
    const g = groups.find((gr) => Math.hypot(x(gr.lon) - x(v.lon), y(gr.lat) - y(v.lat)) < 16);
    if (g) g.list.push(v); else groups.push({ lat: v.lat, lon: v.lon, list: [v] });
  }
  const vehicleMarks = [];
  for (const g of groups) {
    const cx = x(g.lon);
    const cy = y(g.lat);
    g.list.forEach((v, i) => {
      const n = g.list.length;
      const a = (2 * Math.PI * i) / n - Math.PI / 2;
      const rr = n > 1 ? 26 : 0;
      const vx = cx + rr * Math.cos(a);
      const vy = cy + rr * Math.sin(a);
      placed.push([vx - 10, vy - 10, vx + 10, vy + 10]);
      vehicleMarks.push({ v, vx, vy, cx, cy });
    });
  }
  for (const st of [...stops].sort((a, b) => Number(b.kiosk) - Number(a.kiosk))) {
    const g = s("g", {});
    g.append(s("circle", { cx: x(st.lon), cy: y(st.lat), r: st.kiosk ? 7 : 5, fill: colour[st.zone] || "#333", stroke: "#fff", "stroke-width": 2 }));
    g.append(s("title", {}, `${st.name_ja}${st.kiosk ? "(端末あり)" : ""}`));
    if (st.kiosk) {
      const at = placeLabel(placed, x(st.lon), y(st.lat), st.name_ja);
      if (at) g.append(s("text", { x: at.x, y: at.y, class: "stop-label" }, st.name_ja));
    }
    svg.append(g);
  }
  for (const { v, vx, vy, cx, cy } of vehicleMarks) {
    const label = `${v.name_ja || v.vehicle_id}${v.on_break ? "(休憩)" : ""}`;
    const g = s("g", { class: "vehicle", "data-vehicle": v.vehicle_id });
    if (vx !== cx || vy !== cy) g.append(s("line", { x1: cx, y1: cy, x2: vx, y2: vy, stroke: "#000", "stroke-width": 1.5 }));
    g.append(s("rect", { x: vx - 9, y: vy - 9, width: 18, height: 18, rx: 4, fill: "#ff9f1a", stroke: "#000", "stroke-width": 2 }));
    g.append(s("title", {}, label));
    const at = placeLabel(placed, vx, vy, label, 13);
    if (at) g.append(s("text", { x: at.x, y: at.y, "font-weight": "700", class: "vehicle-label" }, label));
    svg.append(g);
  }
  for (const [which, p] of Object.entries(pins)) {
    const px = x(p.lon);
    const py = y(p.lat);
    const g = s("g", { class: "pin", "data-pin": which });
    g.append(s("path", { d: `M${px} ${py} l-9 -20 a10 10 0 1 1 18 0 z`, fill: "#a10f0f", stroke: "#fff", "stroke-width": 2 }));
    const label = which === "origin" ? "乗る場所" : "降りる場所";
    const at = placeLabel(placed, px, py - 14, label, 13);
    if (at) g.append(s("text", { x: at.x, y: at.y, "font-weight": "700" }, label));
    svg.append(g);
  }
  svg.addEventListener("click", (ev) => {
    if (!pinFor || !projection) return;
    const pt = svg.createSVGPoint();
    pt.x = ev.clientX;
    pt.y = ev.clientY;
    const local = pt.matrixTransform(svg.getScreenCTM().inverse());
    setPin(pinFor, projection.toLat(local.y), projection.toLon(local.x));
  });
  mapBox.replaceChildren(el("p", { id: "map-hint", class: "notice", "aria-live": "polite" },
    pinFor ? `地図をクリックして「${pinFor === "origin" ? "乗る場所" : "降りる場所"}」の位置を指定してください。` : ""), svg, el("p", { class: "legend" },
    "● 青: 大川原 ● 紫: 大野駅周辺 ● 大きな点: 予約端末のある停留所", vehicles ? " ■ 橙: 車両(同じ場所の車両は輪に並べ、線で位置を示します)" : "",
    pinned.length ? " ▼ 赤: ドアツードアの位置" : ""));
}

async function refresh() {
  let today;
  let page;
  try {
    // The day's KPIs and alerts come from all its bookings; the table shows one page of the search.
    [today, page] = await Promise.all([
      api.findBookings({ day: tokyoDate(), limit: 500 }),
      api.findBookings({ ...filters, limit: PAGE }),
    ]);
    tableAlert.textContent = "";
  } catch (e) {
    tableAlert.textContent = errText(e);
    return;
  }
  const list = today.items;
  bookingsById = new Map([...list, ...page.items].map((b) => [b.id, b]));
  for (const id of atRisk.keys()) {
    const b = bookingsById.get(id);
    if (b && ["cancelled", "completed", "no_show"].includes(b.status)) atRisk.delete(id);
  }
  drawAlerts();
  let vehicles = null;
  if (vehiclesAvailable) {
    try { vehicles = await api.vehicles(); } catch (e) { if (e.status === 404) vehiclesAvailable = false; }
  }
  if (vehicles) lastVehicles = Array.isArray(vehicles) ? vehicles : vehicles.vehicles; // a failed fetch keeps the last fleet
  drawVehicleFilter();
  // A live refresh must not take the keyboard focus away from a button in the table.
  const focused = tbody.contains(document.activeElement) ? document.activeElement : null;
  const keep = focused && focused.closest("tr[data-booking]")
    ? [focused.closest("tr[data-booking]").dataset.booking, [...focused.closest("tr").querySelectorAll("button")].indexOf(focused)]
    : null;
  const empty = filters.q || filters.status || filters.vehicle_id ? "条件に合う予約はありません。" : "この日の予約はまだありません。";
  tbody.replaceChildren(...(page.items.length ? page.items.map(row) : [el("tr", {}, el("td", { colspan: "9" }, empty))]));
  if (keep) {
    const again = tbody.querySelector(`tr[data-booking="${CSS.escape(keep[0])}"]`);
    const buttons = again ? again.querySelectorAll("button") : [];
    if (buttons.length) buttons[Math.min(Math.max(keep[1], 0), buttons.length - 1)].focus();
  }
  drawPager(page.total, page.items.length);
  const count = (f) => list.filter(f).length;
  const live = count((b) => b.status !== "cancelled");
  // Fetch first, then replace the whole list at once: two refreshes in flight must not both append.
  const service = await serviceKpis();
  kpis.replaceChildren(
    el("li", { id: "kpi-booked" }, "今日の予約", el("strong", {}, String(live))),
    el("li", { id: "kpi-riders" }, "乗車予定の人数", el("strong", {}, String(list.filter((b) => b.status !== "cancelled" && b.status !== "no_show").reduce((n, b) => n + b.party_size, 0)))),
    el("li", { id: "kpi-cancelled" }, "取り消し", el("strong", {}, String(count((b) => b.status === "cancelled")))),
    el("li", { id: "kpi-noshow" }, "乗車なし", el("strong", {}, String(count((b) => b.status === "no_show")))),
    ...service);
  drawMap(lastVehicles);
}

// ---- today's service KPIs from the server (transit/kpi.py, the simulator's definitions; docs/simulate.md)
async function serviceKpis() {
  let k;
  try { k = await api.request("GET", "/api/v1/kpis/today"); } catch (e) { return []; } // the counts above stay
  const item = (id, ja, en, value) => el("li", { id, lang: "ja", title: en }, ja, el("strong", {}, value));
  return [
    item("kpi-completed", "降車済み", "completed", String(k.completed)),
    item("kpi-onboard", "乗車中", "on board now", String(k.on_board_now)),
    item("kpi-ontime", "時間どおり", "on time", `${k.on_time_pct}%`),
    item("kpi-wait", "平均待ち時間", "mean wait", `${k.mean_wait_min}分`),
    item("kpi-ratio", "乗車時間/直行", "ride / direct time", String(k.ride_ratio_mean)),
    item("kpi-broken", "守れなかった約束", "promises broken", String(k.promises_broken)),
    item("kpi-peak", "ピーク時の人/台時", "passengers per vehicle-hour at peak", String(k.pax_per_vehicle_hour_peak)),
  ];
}

// ---- the table's search and pages
const pager = el("nav", { class: "pager row", "aria-label": "予約一覧のページ" });
const vehicleFilter = el("select", { id: "filter-vehicle", name: "vehicle" });

function drawVehicleFilter() {
  const current = filters.vehicle_id;
  const list = lastVehicles || [];
  const key = JSON.stringify([current, list.map((v) => v.vehicle_id)]);
  if (vehicleFilter.dataset.key === key) return;
  vehicleFilter.dataset.key = key;
  vehicleFilter.replaceChildren(el("option", { value: "" }, "すべての車両"),
    ...list.map((v) => el("option", { value: v.vehicle_id, selected: v.vehicle_id === current }, v.name_ja || v.vehicle_id)));
}

function drawPager(total, shown) {
  const from = total ? filters.offset + 1 : 0;
  const to = filters.offset + shown;
  pager.replaceChildren(
    el("button", { type: "button", id: "page-prev", disabled: filters.offset === 0, onclick: () => { filters.offset = Math.max(0, filters.offset - PAGE); refresh(); } }, "前のページ"),
    el("p", { id: "page-info", "aria-live": "polite" }, `${total} 件中 ${from}〜${to} 件`),
    el("button", { type: "button", id: "page-next", disabled: to >= total, onclick: () => { filters.offset += PAGE; refresh(); } }, "次のページ"));
}

function searchForm() {
  const days = el("select", { id: "filter-day", name: "day" });
  const today = tokyoDate();
  for (let i = -7; i <= 7; i++) {
    const d = addDays(today, i);
    days.append(el("option", { value: d, selected: d === filters.day }, `${fmtDayTime(tokyoIso(d, "12:00"), "ja").split(" ")[0]}${i === 0 ? "" : ` (${d})`}`));
  }
  const status = el("select", { id: "filter-status", name: "status" }, el("option", { value: "" }, "すべての状態"),
    ...["confirmed", "arriving", "on_board", "completed", "cancelled", "no_show"].map((x) => el("option", { value: x }, statusText(x, "ja"))));
  const q = el("input", { id: "filter-q", name: "q", type: "search", autocomplete: "off", maxlength: "100" });
  const form = el("form", { id: "search-form", class: "filters", role: "search", "aria-label": "予約の検索" },
    el("div", {}, el("label", { for: "filter-q" }, "予約番号・お名前・電話番号"), q),
    el("div", {}, el("label", { for: "filter-day" }, "日にち"), days),
    el("div", {}, el("label", { for: "filter-status" }, "状態"), status),
    el("div", {}, el("label", { for: "filter-vehicle" }, "車両"), vehicleFilter),
    el("div", { class: "row" },
      el("button", { type: "submit", class: "primary", id: "search" }, icon("search", 20), "検索"),
      el("button", { type: "button", id: "search-reset", onclick: () => {
        q.value = ""; status.value = ""; vehicleFilter.value = ""; days.value = tokyoDate();
        Object.assign(filters, { day: tokyoDate(), q: "", status: "", vehicle_id: "", offset: 0 });
        drawTitle(); refresh();
      } }, "条件を消す")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    Object.assign(filters, { day: days.value, q: q.value.trim(), status: status.value, vehicle_id: vehicleFilter.value, offset: 0 });
    drawTitle();
    refresh();
  });
  return form;
}

const tableTitle = el("h2", { id: "table-h" }, "今日の予約");
function drawTitle() {
  tableTitle.textContent = filters.day === tokyoDate() ? "今日の予約" : `${fmtDayTime(tokyoIso(filters.day, "12:00"), "ja").split(" ")[0]} の予約`;
}

// ---- live updates over /ws/operator (driver_app/protocol.py OperatorServerMessage)
const liveStatus = document.getElementById("live-status");
const alertsBox = el("div", { class: "live-alerts", role: "alert", id: "live-alerts" });

function setStatus(state) {
  if (!liveStatus || liveStatus.dataset.state === state) return; // an unchanged status is not read out again
  liveStatus.dataset.state = state;
  liveStatus.replaceChildren(el("span", { class: "dot", "aria-hidden": "true" }), ...both(state, { s: REFRESH_MS / 1000 }));
}

let alertsShown = "";
function drawAlerts() {
  // Redrawn only when something changed: a role="alert" region is read out again on every change.
  const shown = JSON.stringify([...atRisk.values()].map((m) => [m.booking_id, m.expected, m.promised_latest,
    (bookingsById.get(m.booking_id) || {}).passenger_name, (lastVehicles || []).some((v) => v.vehicle_id === m.vehicle_id), lang()]));
  if (shown === alertsShown) return;
  alertsShown = shown;
  const items = [...atRisk.values()].map((m) => {
    const b = bookingsById.get(m.booking_id);
    const v = (lastVehicles || []).find((x) => x.vehicle_id === m.vehicle_id);
    const vars = (l) => ({
      name: b ? b.passenger_name : "—", id: m.booking_id, expected: fmtTime(m.expected), promised: fmtTime(m.promised_latest),
      min: Math.max(1, Math.round((m.late_s || 0) / 60)), vehicle: v ? (l === "en" ? v.name_en : v.name_ja) || m.vehicle_id : m.vehicle_id,
    });
    return el("div", { class: "risk", dataset: { booking: m.booking_id } },
      el("p", { class: "risk-title" }, warnIcon(), tx("riskTitle")),
      el("p", {}, tx("risk", vars(lang()))),
      el("p", { lang: other(), class: "risk-other" }, tx("risk", vars(other()), other())),
      el("button", { type: "button", // the name starts with the visible words (WCAG 2.5.3), then says which alert
        "aria-label": `${tx("dismiss")} / ${tx("dismiss", {}, other())} — ${b ? b.passenger_name : m.booking_id}`,
        onclick: () => {
          atRisk.delete(m.booking_id);
          drawAlerts();
          (alertsBox.querySelector("button") || root).focus(); // the focus does not fall to <body>
          refresh();
        } }, both("dismiss")));
  });
  alertsBox.replaceChildren(...items);
}

// One refresh for a burst of messages; never two at once; not while a cancel is being confirmed
// (the cancel and its "やめる" refresh anyway).
let refreshTimer = null;
let refreshing = null;
let refreshAgain = false;
function requestRefresh(delay = LIVE_DEBOUNCE_MS) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(runRefresh, delay);
}
async function runRefresh() {
  if (confirmingCancel) return;
  if (refreshing) { refreshAgain = true; return; }
  refreshing = refresh();
  try { await refreshing; } finally {
    refreshing = null;
    if (refreshAgain) { refreshAgain = false; requestRefresh(0); }
  }
}

const LIVE = { ws: null, connected: false, attempt: 0, retry: null, poll: null, watchdog: null, refused: false };

function schedulePoll() {
  clearTimeout(LIVE.poll);
  LIVE.poll = setTimeout(() => { runRefresh(); schedulePoll(); }, LIVE.connected ? LIVE_POLL_MS : REFRESH_MS);
}

function setConnected(up) {
  if (LIVE.connected === up) return;
  LIVE.connected = up;
  if (up) {
    LIVE.attempt = 0;
    setStatus("live");
    requestRefresh(); // whatever happened while the link was down
  } else setStatus(LIVE.refused ? "refused" : "reconnecting");
  schedulePoll();
}

const ON = {
  vehicle: (m) => {
    const list = lastVehicles ? [...lastVehicles] : [];
    const i = list.findIndex((v) => v.vehicle_id === m.vehicle_id);
    if (i >= 0) list[i] = m; else list.push(m);
    lastVehicles = list;
    drawMap(lastVehicles);
  },
  plan_changed: () => requestRefresh(),
  replan_needed: () => requestRefresh(),
  booking_changed: () => requestRefresh(),
  handover_locked: (m) => { console.warn("handover locked:", m.booking_id); requestRefresh(); },
  promise_at_risk: (m) => { atRisk.set(m.booking_id, m); drawAlerts(); requestRefresh(); },
  promise_cleared: (m) => { atRisk.delete(m.booking_id); drawAlerts(); requestRefresh(); },
  promise_broken: (m) => {
    atRisk.set(m.booking_id, { ...m, late_s: Math.max(0, (new Date(m.expected) - new Date(m.promised_latest)) / 1000) });
    drawAlerts(); requestRefresh();
  },
  error: (m) => { console.warn("live channel error:", m.code, m.message_en); },
  ping: (m, ws) => ws.send(JSON.stringify({ type: "pong", t: m.t })),
  pong: () => {},
};

function connectLive() {
  clearTimeout(LIVE.retry);
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let ws;
  try {
    ws = new WebSocket(`${proto}//${location.host}/ws/operator`);
  } catch (e) {
    console.error("live channel:", e);
    retryLive();
    return;
  }
  LIVE.ws = ws;
  const alive = () => {
    clearTimeout(LIVE.watchdog);
    LIVE.watchdog = setTimeout(() => ws.close(), SILENT_MS);
  };
  ws.onopen = () => {
    // The token goes in the first message, not in the URL (so it stays out of access logs).
    ws.send(JSON.stringify({ type: "hello", token: api.token, client: "operator-console" }));
    // The server answers this ping only once the console is registered for pushes: then it is live.
    ws.send(JSON.stringify({ type: "ping", t: Date.now() / 1000 }));
    alive();
  };
  ws.onmessage = (ev) => {
    alive();
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { console.error("live channel: not JSON", e); return; }
    if (m && m.type !== "error") setConnected(true);
    const h = ON[m && m.type];
    if (!h) { console.error("live channel: unknown message type", m && m.type); return; }
    h(m, ws);
  };
  ws.onclose = (ev) => {
    clearTimeout(LIVE.watchdog);
    if (LIVE.ws !== ws) return;
    LIVE.ws = null;
    LIVE.refused = ev.code === 4401 || ev.code === 4403;
    setConnected(false);
    setStatus(LIVE.refused ? "refused" : "reconnecting");
    if (!LIVE.refused) retryLive();
  };
  ws.onerror = () => {}; // onclose follows
}

function retryLive() {
  const base = BACKOFF_MS[Math.min(LIVE.attempt, BACKOFF_MS.length - 1)];
  LIVE.attempt += 1;
  clearTimeout(LIVE.retry);
  LIVE.retry = setTimeout(connectLive, base + Math.random() * base * 0.3);
}

function startLive() {
  setStatus("connecting");
  schedulePoll(); // polling at the old interval until the live link is up
  if ("WebSocket" in window) connectLive();
}

function login(message) {
  root.replaceChildren(el("section", { class: "panel" }, el("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    setToken("operator", document.getElementById("op-token").value);
    try { await boot(); } catch (err) { clearToken("operator"); login(errText(err)); }
  } },
  el("h2", {}, "ログイン(職員)"),
  el("label", { for: "op-token" }, "職員用トークン"),
  el("input", { id: "op-token", name: "token", type: "text", autocomplete: "off", spellcheck: "false", required: true }),
  el("div", { class: "alert", role: "alert" }, message || ""),
  el("button", { type: "submit", class: "primary" }, "ログイン"))));
  document.getElementById("op-token").focus();
}

async function boot() {
  const me = await api.me();
  if (me.role !== "operator" && me.role !== "admin") throw new ApiError(403, { message_ja: "職員用のトークンではありません。" });
  document.getElementById("who").textContent = me.name;
  stops = await api.stops();
  byId = new Map(stops.map((s) => [s.id, s]));
  stores = await api.stores().catch(() => []);
  root.replaceChildren(
    el("div", { class: "left" }, bookingForm(), familyDesk()),
    el("div", { class: "right" },
      alertsBox,
      el("section", { class: "panel", "aria-labelledby": "kpi-h" }, el("h2", { id: "kpi-h" }, "今日の運行"), kpis),
      el("section", { class: "panel", "aria-labelledby": "table-h" },
        tableTitle, searchForm(), tableAlert,
        el("div", { class: "table-wrap" }, el("table", { id: "bookings" },
          el("caption", { class: "visually-hidden" }, "予約一覧(迎えの時間順)"),
          el("thead", {}, el("tr", {}, ["予約番号", "迎え・お届けの時間", "お名前", "区間", "人数・荷物", "状態", "車両", "受付", "操作"].map((h) => el("th", { scope: "col" }, h)))),
          tbody)), pager),
      el("section", { class: "panel", "aria-labelledby": "map-h" }, el("h2", { id: "map-h" }, "地図"), mapBox)));
  await refresh();
  startLive();
}

if (getToken("operator")) boot().catch((e) => login(errText(e)));
else login();
