// Operator console: phone booking for a caller, today's bookings with cancel, KPIs, an SVG map.
// Live updates come over /ws/operator; while that link is down the console polls every REFRESH_MS.
import { Api, ApiError, getToken, setToken, clearToken, newKey, tokyoDate, tokyoIso, fmtTime, fmtDayTime, serviceNow, causeText, statusText, ZONES, addDays, tokyoMinutes, hm, stopName } from "./api.js";
import { el, lang, setLang, translator } from "./i18n.js";
import { TEXTS } from "./operator-texts.js";
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

// Every text of the console is in operator-texts.js; the live status shows the other language beside it.
const other = () => (lang() === "en" ? "ja" : "en");
const tx = translator(TEXTS);
// "ライブ更新中 / Live": the chosen language first, the other one marked with its lang.
const both = (key, vars = {}) => [tx(key, vars), " / ", el("span", { lang: other() }, tx(key, vars, other()))];

const t = tx;
const name = (id) => (byId.has(id) ? stopName(byId.get(id), lang()) : id || "—");
// A place of a booking: its stop's name, or for door-to-door the address (or the point, if none was given).
const placeName = (p) => (p.stop_id ? name(p.stop_id) : p.address || t("point", { lat: p.lat.toFixed(4), lon: p.lon.toFixed(4) }));
const vehicleName = (id) => {
  if (!id) return "—";
  const v = (lastVehicles || []).find((x) => x.vehicle_id === id);
  return v ? (lang() === "en" ? v.name_en : v.name_ja) || id : id;
};
const warnIcon = () => icon("warning", 20);
// A server error in the chosen language: every error answer carries message_ja and message_en.
const errText = (e) => (e instanceof ApiError ? e.text(lang()) : String(e));

function stopSelect(id, label) {
  const sel = el("select", { id, name: id, required: true }, el("option", { value: "" }, t("choose")));
  for (const zone of Object.keys(ZONES)) {
    const g = el("optgroup", { label: ZONES[zone][lang()] });
    for (const s of stops.filter((x) => x.zone === zone)) g.append(el("option", { value: s.id }, lang() === "en" ? s.name_en : `${s.name_ja}(${s.name_kana})`));
    sel.append(g);
  }
  sel.append(el("option", { value: POINT }, t("point_choice")));
  // Door-to-door: the address as told, and the position by a click on the map or typed in.
  const box = el("div", { class: "point-box", id: `${id}-point`, hidden: true },
    el("label", { for: `${id}-address` }, t("address")),
    el("input", { id: `${id}-address`, name: `${id}-address`, autocomplete: "off", maxlength: "200" }),
    el("p", { class: "muted", id: `${id}-pin-help` }, t("pin_help")),
    el("div", { class: "grid2" },
      el("div", {}, el("label", { for: `${id}-lat` }, t("lat")), el("input", { id: `${id}-lat`, name: `${id}-lat`, inputmode: "decimal", autocomplete: "off", "aria-describedby": `${id}-pin-help` })),
      el("div", {}, el("label", { for: `${id}-lon` }, t("lon")), el("input", { id: `${id}-lon`, name: `${id}-lon`, inputmode: "decimal", autocomplete: "off", "aria-describedby": `${id}-pin-help` }))),
    el("button", { type: "button", id: `${id}-pin`, "aria-pressed": "false", onclick: () => armPin(id) }, icon("pin", 22), t("pin_button")),
    // A door-to-door rider's saved home (set in the phone app), found by the caller's phone number.
    el("p", {}, el("button", { type: "button", id: `${id}-home`, onclick: () => useHome(id) }, icon("home", 22), t("home_button"))),
    el("p", { id: `${id}-home-status`, role: "status" }));
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

// Fill a door-to-door place with the caller's saved home (POST /api/v1/desk/rider-home by phone).
async function useHome(which) {
  const out = document.getElementById(`${which}-home-status`);
  const phone = document.getElementById("phone").value.trim();
  if (!phone) { out.textContent = t("home_need_phone"); document.getElementById("phone").focus(); return; }
  out.textContent = "";
  try {
    const r = await api.deskHome(phone);
    if (!r.home) { out.textContent = t("home_none", { name: r.name || t("no_name") }); return; }
    document.getElementById(`${which}-address`).value = r.home.address;
    const caller = document.getElementById("caller");
    if (!caller.value.trim() && r.name) caller.value = r.name;
    setPin(which, r.home.lat, r.home.lon);
    out.textContent = t("home_used", { name: r.name || t("no_name"), address: r.home.address });
  } catch (e) {
    out.textContent = errText(e);
  }
}

// The next click on the map sets the pin of `which` (origin or destination); null stops that.
function armPin(which) {
  pinFor = pinFor === which ? null : which;
  for (const b of document.querySelectorAll("[id$='-pin']")) b.setAttribute("aria-pressed", String(b.id === `${pinFor}-pin`));
  const hint = document.getElementById("map-hint");
  if (hint) hint.textContent = pinFor ? t("map_click", { which: t(pinFor) }) : "";
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
    days.append(el("option", { value: d, selected: d === defaultDay }, fmtDayTime(tokyoIso(d, "12:00"), lang()).split(" ")[0]));
  }
  const form = el("form", { id: "phone-form", novalidate: true },
    el("h2", { id: "phone-h" }, t("phone_h")),
    el("div", { class: "grid2" },
      el("div", {}, el("label", { for: "caller" }, t("caller")), el("input", { id: "caller", name: "caller", autocomplete: "off", required: true })),
      el("div", {}, el("label", { for: "phone" }, t("phone")), el("input", { id: "phone", name: "phone", type: "tel", inputmode: "tel", autocomplete: "off" }))),
    el("div", {}, ...stopSelect("origin", t("origin"))),
    el("div", {}, ...stopSelect("destination", t("destination"))),
    el("fieldset", {}, el("legend", {}, t("time")),
      el("label", { for: "mode" }, t("mode")),
      el("select", { id: "mode", name: "mode" },
        el("option", { value: "leave_at" }, t("leave_at")),
        el("option", { value: "arrive_by" }, t("arrive_by")),
        el("option", { value: "now" }, t("now"))),
      el("div", { class: "grid2" },
        el("div", {}, el("label", { for: "day" }, t("day")), days),
        el("div", {}, el("label", { for: "time" }, t("time")), el("input", { id: "time", name: "time", type: "time", min: "07:00", max: "20:00", step: "300", value: defaultTime })))),
    el("div", { class: "grid2" },
      el("div", {}, el("label", { for: "party" }, t("party")), el("input", { id: "party", name: "party", type: "number", min: "1", max: "6", value: "1", inputmode: "numeric" })),
      el("div", {}, el("label", { for: "wheelchairs" }, t("wheelchairs")), el("input", { id: "wheelchairs", name: "wheelchairs", type: "number", min: "0", max: "6", value: "0", inputmode: "numeric" }))),
    el("div", {}, el("label", { for: "note" }, t("note")),
      el("input", { id: "note", name: "note", autocomplete: "off", maxlength: "200" })),
    alert,
    el("p", {}, el("button", { type: "submit", class: "primary", id: "get-offer" }, t("search_ride"))),
    result);

  const v = (id) => form.querySelector(`#${id}`).value.trim();
  async function search(timeIso) {
    alert.textContent = "";
    result.replaceChildren();
    pending = null;
    const caller = v("caller");
    const problems = [];
    if (!caller) problems.push(t("need_caller"));
    if (!v("origin") || !v("destination")) problems.push(t("need_places"));
    else if (v("origin") === v("destination") && v("origin") !== POINT) problems.push(t("same_places"));
    for (const which of ["origin", "destination"]) {
      if (v(which) !== POINT) continue;
      if (!pins[which]) problems.push(t("need_pin", { which: t(which) }));
      if (!v(`${which}-address`)) problems.push(t("need_address", { which: t(which) }));
    }
    const mode = timeIso ? "leave_at" : v("mode");
    if (mode !== "now" && !timeIso && !v("time")) problems.push(t("need_time"));
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
          el("p", {}, causeText(e.body.cause, lang())),
          alts.length ? el("p", {}, t("alternatives")) : null,
          el("div", { class: "row" }, alts.map((iso) => el("button", { type: "button", class: "alt", onclick: () => search(iso) }, t("try_at", { t: fmtDayTime(iso, lang()) }))))));
      } else alert.textContent = errText(e);
    } finally {
      btn.disabled = false;
    }
  }

  function showOffer() {
    const o = pending.offer;
    const btn = el("button", { type: "button", class: "primary", id: "confirm" }, t("confirm"));
    btn.addEventListener("click", async () => {
      if (btn.disabled) return;
      btn.disabled = true;
      try {
        const b = await api.confirm(o.offer_id, pending.key);
        pending = null;
        result.replaceChildren(el("p", { role: "status", id: "booked" },
          t("booked", { name: b.passenger_name, from: fmtDayTime(b.pickup_window_start, lang()), to: fmtTime(b.pickup_window_end) }),
          el("strong", { id: "booked-number", class: "number" }, b.number),
          t("booked_tail")));
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
      el("p", {}, t("offer_head")),
      el("p", { class: "big", id: "offer-window" }, `${fmtDayTime(o.pickup_window_start, lang())} 〜 ${fmtTime(o.pickup_window_end)}`),
      el("p", {}, t("offer_line", { from: placeName(o.origin), to: placeName(o.destination), n: o.party_size, latest: fmtTime(o.latest_dropoff), fare: o.fare_yen })),
      el("p", { class: "muted" }, t("valid_until", { t: fmtTime(o.expires_at) })),
      el("div", { class: "row" }, btn, el("button", { type: "button", onclick: () => { pending = null; result.replaceChildren(); } }, t("drop_offer")))));
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
      const who = t(f.role === "guardian" ? "link_guardian" : "link_member", { name: f.name, resident: resident.name });
      const how = t(f.consent === "desk" ? "consent_desk" : "consent_code");
      const buttons = ending === f.link_id
        ? [el("button", { type: "button", class: "danger primary", id: "desk-unlink-yes", onclick: async () => {
          try { await api.unlinkFamily(f.link_id); status.textContent = t("unlinked", { name: f.name }); } catch (e) { alert.textContent = errText(e); }
          ending = null;
          await find();
        } }, t("unlink_yes")), " ", el("button", { type: "button", id: "desk-unlink-no", onclick: () => { ending = null; draw(); } }, t("unlink_no"))]
        : [el("button", { type: "button", class: "danger", dataset: { unlink: f.link_id }, "aria-label": t("unlink_label", { name: f.name }),
          onclick: () => { ending = f.link_id; draw(); document.getElementById("desk-unlink-yes").focus(); } }, t("unlink"))];
      return el("li", { dataset: { link: f.link_id } }, el("span", {}, who), " ", el("span", { class: "muted" }, t("link_since", { how, since: fmtDayTime(f.since, lang()) })), " ", ...buttons);
    });
    const memberName = el("input", { id: "desk-member-name", name: "member-name", autocomplete: "off", maxlength: "100" });
    const memberPhone = el("input", { id: "desk-member-phone", name: "member-phone", type: "tel", inputmode: "tel", autocomplete: "off" });
    const consent = el("input", { type: "checkbox", id: "desk-consent", name: "consent" });
    const link = el("form", { id: "desk-link-form", novalidate: true, class: "stack" },
      el("h3", {}, t("add_member", { name: resident.name })),
      el("div", { class: "grid2" },
        el("div", {}, el("label", { for: "desk-member-name" }, t("member_name")), memberName),
        el("div", {}, el("label", { for: "desk-member-phone" }, t("member_phone")), memberPhone)),
      el("div", { class: "check" }, consent,
        el("label", { for: "desk-consent" }, t("consent"))),
      el("p", {}, el("button", { type: "submit", class: "primary", id: "desk-link" }, t("link"))));
    link.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      alert.textContent = "";
      const problems = [];
      if (!memberName.value.trim()) problems.push(t("need_member_name"));
      if (!memberPhone.value.trim()) problems.push(t("need_member_phone"));
      if (!consent.checked) problems.push(t("need_consent"));
      if (problems.length) { alert.textContent = problems.join(" "); return; }
      try {
        await api.deskLink(phone, memberPhone.value.trim(), memberName.value.trim());
        status.textContent = t("linked", { name: resident.name, member: memberName.value.trim() });
        await find();
      } catch (e) { alert.textContent = errText(e); }
    });
    found.replaceChildren(
      el("p", { id: "desk-resident" }, el("strong", {}, t("resident", { name: resident.name })), t("resident_phone", { phone: resident.phone_masked })),
      el("h3", {}, t("links_h")),
      links.length ? el("ul", { id: "desk-links", class: "desk-links" }, links) : el("p", { id: "desk-links-none" }, t("links_none")),
      link);
  };

  const phoneIn = el("input", { id: "desk-phone", name: "desk-phone", type: "tel", inputmode: "tel", autocomplete: "off", "aria-describedby": "desk-help" });
  const search = el("form", { id: "desk-search", role: "search", "aria-label": t("desk_search"), novalidate: true },
    el("p", { class: "muted", id: "desk-help" }, t("desk_help")),
    el("label", { for: "desk-phone" }, t("desk_phone")), phoneIn,
    el("p", {}, el("button", { type: "submit", id: "desk-find" }, icon("search", 20), t("find"))));
  search.addEventListener("submit", (ev) => {
    ev.preventDefault();
    phone = phoneIn.value.trim();
    status.textContent = "";
    ending = null;
    if (!phone) { alert.textContent = t("need_phone"); resident = null; draw(); return; }
    find();
  });
  return el("section", { class: "panel", id: "family-desk", "aria-labelledby": "desk-h" },
    el("h2", { id: "desk-h" }, t("desk_h")), search, alert, status, found);
}

// ---- today's bookings, KPIs, map
const kpis = el("ul", { class: "kpis", id: "kpis" });
const tbody = el("tbody", { id: "bookings-body" });
const tableAlert = el("div", { class: "alert", role: "alert", id: "table-error" });
const mapBox = el("div", { id: "map-box" });

// A delivery's status in the goods' words (docs/goods.md), and its temperature.
const CODE_LIVE = new Set(["ordered", "ready", "picked_up"]);
// On the minibus and not handed over: the desk may choose (and later change) where it goes back.
const RETURNABLE = new Set(["picked_up", "returning", "locked"]);
// The return being chosen: {id, step: "choose" | "confirm", to: "store" | "stop", stopId, place}.
let choosingReturn = null;
const tableStatus = el("p", { role: "status", id: "table-status", tabindex: "-1" });
const storeName = (id) => { const x = stores.find((y) => y.id === id); return x ? (lang() === "en" ? x.name_en : x.name_ja) : id; };

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
        t("code"), " ", el("strong", { class: "code" }, revealed.get(b.id)), el("br"),
        el("span", { class: "muted" }, t("code_note"))),
      el("button", { type: "button", "aria-label": t("hide_label", { name: b.passenger_name }), onclick: () => { revealed.delete(b.id); refresh(); } }, t("hide")));
    } else {
      cell.append(el("button", { type: "button", class: "readout-btn", dataset: { readout: b.id },
        "aria-label": t("readout_label", { name: b.passenger_name }), onclick: () => readOut(b) }, t("readout")));
    }
  } else revealed.delete(b.id);
  if (RETURNABLE.has(d.status)) cell.append(returnChooser(b));
  else if (choosingReturn && choosingReturn.id === b.id) choosingReturn = null;
  return {
    route: [el("strong", {}, t("groceries"), " "), `${storeName(d.store_id)} → ${placeName(b.destination)}`,
      d.order_number ? ` ・ ${t("order", { n: d.order_number })}` : "", d.shopping_list ? ` ・ ${d.shopping_list}` : ""],
    load: `${t("parcels", { n: d.parcels || b.parcels })} ・ ${d.temperature ? t(`temp_${d.temperature}`) : "—"}`,
    status: d.status ? t(`ds_${d.status}`) : statusText(b.status, lang()),
    action: cell,
  };
}

// A return place as the desk says it: the store's own stop is named as the store.
function returnPlace(d, stopId) {
  const store = stores.find((x) => x.id === d.store_id);
  return !stopId || (store && store.stop_id === stopId) ? storeName(d.store_id) : name(stopId);
}

// "Redraw, then put the focus on sel": applied by the first drawing of the table after the ask,
// right as it is drawn (not after the KPIs are fetched), so the focus never rests elsewhere meanwhile.
let focusAfterDraw = null;
const refreshThenFocus = (sel) => { focusAfterDraw = sel; return refresh(); };

// 「戻し先を選ぶ」: the store or a stop → confirm → POST /api/v1/deliveries/{id}/return → told where.
function returnChooser(b) {
  const d = b.delivery;
  const who = b.passenger_name || t("no_name");
  const box = el("div", { class: "return-cell" });
  if (d.return_stop_id) box.append(el("p", { class: "return-now", dataset: { returnFor: b.id } }, t("rt_now", { place: returnPlace(d, d.return_stop_id) })));
  const c = choosingReturn && choosingReturn.id === b.id ? choosingReturn : null;
  if (!c) {
    box.append(el("button", { type: "button", class: "return-btn", dataset: { returnOpen: b.id },
      "aria-label": t(d.return_stop_id ? "rt_change_label" : "rt_open_label", { name: who }),
      onclick: () => { choosingReturn = { id: b.id, step: "choose", to: "store", stopId: "" }; refreshThenFocus("#rt-title"); } },
    t(d.return_stop_id ? "rt_change" : "rt_open")));
    return box;
  }
  const close = el("button", { type: "button", id: "rt-close", onclick: () => { choosingReturn = null; refreshThenFocus(`[data-return-open="${CSS.escape(b.id)}"]`); } }, t("rt_close"));
  const head = el("p", { id: "rt-title", tabindex: "-1" }, el("strong", {}, t("rt_title", { name: who })));
  if (c.step === "confirm") {
    const yes = el("button", { type: "button", class: "primary", id: "rt-yes" }, t("rt_yes"));
    yes.addEventListener("click", async () => {
      if (yes.disabled) return;
      yes.disabled = true;
      try {
        await api.returnDelivery(b.id, c.stopId || null);
        choosingReturn = null;
        tableStatus.textContent = t("rt_done", { name: who, place: c.place });
        tableAlert.textContent = "";
      } catch (e) {
        yes.disabled = false;
        tableAlert.textContent = errText(e);
        return;
      }
      await refresh();
      tableStatus.focus();
    });
    box.append(el("div", { class: "return-box", id: "rt-box", role: "group", "aria-labelledby": "rt-title" }, head,
      el("p", { id: "rt-q" }, t("rt_confirm_q", { place: c.place })), yes, " ",
      el("button", { type: "button", id: "rt-again", onclick: () => { c.step = "choose"; refreshThenFocus("#rt-title"); } }, t("rt_again")), " ", close));
    return box;
  }
  const store = stores.find((x) => x.id === d.store_id);
  const select = el("select", { id: "rt-stop", name: "rt-stop", disabled: c.to !== "stop", onchange: () => { c.stopId = select.value; } },
    el("option", { value: "" }, t("choose")));
  for (const zone of Object.keys(ZONES)) {
    const g = el("optgroup", { label: ZONES[zone][lang()] });
    for (const st of stops.filter((x) => x.zone === zone && (!store || x.id !== store.stop_id))) g.append(el("option", { value: st.id, selected: st.id === c.stopId }, name(st.id)));
    if (g.children.length) select.append(g);
  }
  const radio = (value, label) => {
    const r = el("input", { type: "radio", name: "rt-to", id: `rt-to-${value}`, value, checked: c.to === value,
      onchange: () => { c.to = value; select.disabled = value !== "stop"; } });
    return el("div", { class: "check" }, r, el("label", { for: `rt-to-${value}` }, label));
  };
  const err = el("p", { class: "alert", role: "alert", id: "rt-error" });
  const form = el("form", { id: "rt-form", class: "return-box", "aria-labelledby": "rt-title", novalidate: true }, head,
    el("fieldset", {}, el("legend", {}, t("rt_where")),
      radio("store", t("rt_store", { store: storeName(d.store_id) })), radio("stop", t("rt_stop"))),
    el("label", { for: "rt-stop" }, t("rt_stop_label")), select, err,
    el("button", { type: "submit", class: "primary", id: "rt-next" }, t("rt_next")), " ", close);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (c.to === "stop" && !c.stopId) { err.textContent = t("rt_need_stop"); select.focus(); return; }
    const stopId = c.to === "stop" ? c.stopId : "";
    Object.assign(c, { step: "confirm", stopId, place: returnPlace(d, stopId) });
    refreshThenFocus("#rt-yes");
  });
  box.append(form);
  return box;
}

function row(b) {
  const parcel = b.kind === "delivery" ? deliveryCells(b) : null;
  const cancellable = (b.status === "confirmed" || b.status === "arriving")
    && (!parcel || ["ordered", "ready"].includes((b.delivery || {}).status));
  const cell = parcel ? parcel.action : el("td", {});
  if (cancellable) {
    if (confirmingCancel === b.id) {
      cell.append(
        el("button", { type: "button", class: "danger primary", "aria-label": t("cancel_yes_label", { name: b.passenger_name }), onclick: () => cancel(b.id) }, t("cancel_yes")),
        " ",
        el("button", { type: "button", onclick: () => { confirmingCancel = null; refresh(); } }, t("cancel_no")));
    } else {
      cell.append(el("button", { type: "button", class: "danger", "aria-label": t("cancel_label", { name: b.passenger_name }), onclick: () => { confirmingCancel = b.id; refresh(); } }, t("cancel")));
    }
  }
  const win = parcel && b.delivery.window_start
    ? t("deliver_window", { from: fmtTime(b.delivery.window_start), to: fmtTime(b.delivery.window_end) })
    : `${fmtTime(b.pickup_window_start)}〜${fmtTime(b.pickup_window_end)}`;
  return el("tr", { class: `${b.status}${parcel ? " delivery" : ""}`, dataset: { booking: b.id, kind: b.kind } },
    el("td", { class: "number" }, b.number),
    el("td", {}, win),
    el("td", {}, b.passenger_name || t("no_name")),
    el("td", {}, parcel ? parcel.route : `${placeName(b.origin)} → ${placeName(b.destination)}`),
    el("td", {}, parcel ? parcel.load : `${b.party_size}${b.wheelchairs ? ` ${t("wc_n", { n: b.wheelchairs })}` : ""}`),
    el("td", { class: "status" }, parcel ? parcel.status : statusText(b.status, lang()),
      atRisk.has(b.id) ? el("strong", { class: "risk-badge" }, " ", warnIcon(), tx("riskBadge")) : null),
    el("td", {}, vehicleName(b.vehicle_id)),
    el("td", {}, (["app", "kiosk", "phone"].includes(b.channel) ? t(`ch_${b.channel}`) : b.channel)),
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
  svg.append(s("title", { id: "map-title" }, t("map_title")),
    s("desc", { id: "map-desc" }, t("map_desc", { n: stops.length, vehicles: vehicles ? t("map_desc_vehicles", { n: moving.length, names: moving.map((v) => vehicleName(v.vehicle_id)).join(lang() === "en" ? ", " : "、") }) : "" })));
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
    g.append(s("title", {}, `${name(st.id)}${st.kiosk ? t("has_kiosk") : ""}`));
    if (st.kiosk) {
      const at = placeLabel(placed, x(st.lon), y(st.lat), name(st.id));
      if (at) g.append(s("text", { x: at.x, y: at.y, class: "stop-label" }, name(st.id)));
    }
    svg.append(g);
  }
  for (const { v, vx, vy, cx, cy } of vehicleMarks) {
    const label = `${(lang() === "en" ? v.name_en : v.name_ja) || v.vehicle_id}${v.on_break ? t("on_break") : ""}`;
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
    const label = t(which);
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
    pinFor ? t("map_click", { which: t(pinFor) }) : ""), svg, el("p", { class: "legend" },
    t("legend"), vehicles ? t("legend_vehicles") : "",
    pinned.length ? t("legend_pins") : ""));
}

// Refreshes overlap (a search, a live event, the poll): only the latest one may draw, so an older
// answer (asked with the filters of before) never overwrites a newer search's result.
// A superseded refresh settles with the newest one, so "refresh, then focus" always runs after
// the drawing that the user sees.
let refreshSeq = 0;
let newestRefresh = Promise.resolve();
function refresh() {
  newestRefresh = drawRefresh(++refreshSeq);
  return newestRefresh;
}
async function drawRefresh(mine) {
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
    if (mine !== refreshSeq) return newestRefresh;
    tableAlert.textContent = errText(e);
    return;
  }
  if (mine !== refreshSeq) return newestRefresh;
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
    if (mine !== refreshSeq) return newestRefresh;
  }
  if (vehicles) lastVehicles = Array.isArray(vehicles) ? vehicles : vehicles.vehicles; // a failed fetch keeps the last fleet
  drawVehicleFilter();
  // A live refresh must not take the keyboard focus away from a button in the table.
  // The focus stays where it was across a re-render: the same row's same focusable (a button, the
  // return chooser's fields, the code read out), so a live refresh never moves it elsewhere.
  const FOCUSABLE = "button, input, select, [tabindex]";
  const focused = tbody.contains(document.activeElement) ? document.activeElement : null;
  const keep = focused && focused.closest("tr[data-booking]")
    ? [focused.closest("tr[data-booking]").dataset.booking, [...focused.closest("tr").querySelectorAll(FOCUSABLE)].indexOf(focused)]
    : null;
  const empty = t(filters.q || filters.status || filters.vehicle_id ? "none_found" : "none_today");
  tbody.replaceChildren(...(page.items.length ? page.items.map(row) : [el("tr", {}, el("td", { colspan: "9" }, empty))]));
  if (keep) {
    const again = tbody.querySelector(`tr[data-booking="${CSS.escape(keep[0])}"]`);
    const buttons = again ? again.querySelectorAll(FOCUSABLE) : [];
    if (buttons.length) buttons[Math.min(Math.max(keep[1], 0), buttons.length - 1)].focus();
  }
  if (focusAfterDraw) {
    const wanted = tbody.querySelector(focusAfterDraw);
    focusAfterDraw = null;
    if (wanted) wanted.focus();
  }
  drawPager(page.total, page.items.length);
  const count = (f) => list.filter(f).length;
  const live = count((b) => b.status !== "cancelled");
  // Fetch first, then replace the whole list at once: two refreshes in flight must not both append.
  const service = await serviceKpis();
  kpis.replaceChildren(
    el("li", { id: "kpi-booked" }, t("kpi_booked"), el("strong", {}, String(live))),
    el("li", { id: "kpi-riders" }, t("kpi_riders"), el("strong", {}, String(list.filter((b) => b.status !== "cancelled" && b.status !== "no_show").reduce((n, b) => n + b.party_size, 0)))),
    el("li", { id: "kpi-cancelled" }, t("kpi_cancelled"), el("strong", {}, String(count((b) => b.status === "cancelled")))),
    el("li", { id: "kpi-noshow" }, t("kpi_noshow"), el("strong", {}, String(count((b) => b.status === "no_show")))),
    ...service);
  drawMap(lastVehicles);
}

// ---- today's service KPIs from the server (transit/kpi.py, the simulator's definitions; docs/simulate.md)
async function serviceKpis() {
  let k;
  try { k = await api.request("GET", "/api/v1/kpis/today"); } catch (e) { return []; } // the counts above stay
  const item = (id, value) => el("li", { id }, t(id.replace("-", "_")), el("strong", {}, value));
  return [
    item("kpi-completed", String(k.completed)),
    item("kpi-onboard", String(k.on_board_now)),
    item("kpi-ontime", `${k.on_time_pct}%`),
    item("kpi-wait", t("minutes", { n: k.mean_wait_min })),
    item("kpi-ratio", String(k.ride_ratio_mean)),
    item("kpi-broken", String(k.promises_broken)),
    item("kpi-peak", String(k.pax_per_vehicle_hour_peak)),
  ];
}

// ---- the table's search and pages
const pager = el("nav", { class: "pager row" }); // its aria-label is set in render()
const vehicleFilter = el("select", { id: "filter-vehicle", name: "vehicle" });

function drawVehicleFilter() {
  const current = filters.vehicle_id;
  const list = lastVehicles || [];
  const key = JSON.stringify([current, list.map((v) => v.vehicle_id), lang()]);
  if (vehicleFilter.dataset.key === key) return;
  vehicleFilter.dataset.key = key;
  vehicleFilter.replaceChildren(el("option", { value: "" }, t("all_vehicles")),
    ...list.map((v) => el("option", { value: v.vehicle_id, selected: v.vehicle_id === current }, (lang() === "en" ? v.name_en : v.name_ja) || v.vehicle_id)));
}

function drawPager(total, shown) {
  const from = total ? filters.offset + 1 : 0;
  const to = filters.offset + shown;
  pager.replaceChildren(
    el("button", { type: "button", id: "page-prev", disabled: filters.offset === 0, onclick: () => { filters.offset = Math.max(0, filters.offset - PAGE); refresh(); } }, t("prev")),
    el("p", { id: "page-info", "aria-live": "polite" }, t("page_info", { total, from, to })),
    el("button", { type: "button", id: "page-next", disabled: to >= total, onclick: () => { filters.offset += PAGE; refresh(); } }, t("next")));
}

function searchForm() {
  const days = el("select", { id: "filter-day", name: "day" });
  const today = tokyoDate();
  for (let i = -7; i <= 7; i++) {
    const d = addDays(today, i);
    days.append(el("option", { value: d, selected: d === filters.day }, `${fmtDayTime(tokyoIso(d, "12:00"), lang()).split(" ")[0]}${i === 0 ? "" : ` (${d})`}`));
  }
  const status = el("select", { id: "filter-status", name: "status" }, el("option", { value: "" }, t("all_statuses")),
    ...["confirmed", "arriving", "on_board", "completed", "cancelled", "no_show"].map((x) => el("option", { value: x }, statusText(x, lang()))));
  const q = el("input", { id: "filter-q", name: "q", type: "search", autocomplete: "off", maxlength: "100" });
  const form = el("form", { id: "search-form", class: "filters", role: "search", "aria-label": t("search_label") },
    el("div", {}, el("label", { for: "filter-q" }, t("filter_q")), q),
    el("div", {}, el("label", { for: "filter-day" }, t("day")), days),
    el("div", {}, el("label", { for: "filter-status" }, t("status")), status),
    el("div", {}, el("label", { for: "filter-vehicle" }, t("vehicle")), vehicleFilter),
    el("div", { class: "row" },
      el("button", { type: "submit", class: "primary", id: "search" }, icon("search", 20), t("search")),
      el("button", { type: "button", id: "search-reset", onclick: () => {
        q.value = ""; status.value = ""; vehicleFilter.value = ""; days.value = tokyoDate();
        Object.assign(filters, { day: tokyoDate(), q: "", status: "", vehicle_id: "", offset: 0 });
        drawTitle(); refresh();
      } }, t("reset"))));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    Object.assign(filters, { day: days.value, q: q.value.trim(), status: status.value, vehicle_id: vehicleFilter.value, offset: 0 });
    drawTitle();
    refresh();
  });
  return form;
}

const tableTitle = el("h2", { id: "table-h" });
function drawTitle() {
  tableTitle.textContent = filters.day === tokyoDate() ? t("today_h") : t("day_h", { day: fmtDayTime(tokyoIso(filters.day, "12:00"), lang()).split(" ")[0] });
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
  el("h2", {}, t("login_h")),
  el("label", { for: "op-token" }, t("token")),
  el("input", { id: "op-token", name: "token", type: "text", autocomplete: "off", spellcheck: "false", required: true }),
  el("div", { class: "alert", role: "alert" }, message || ""),
  el("button", { type: "submit", class: "primary" }, t("login")))));
  document.getElementById("op-token").focus();
}

async function boot() {
  const me = await api.me();
  if (me.role !== "operator" && me.role !== "admin") throw new ApiError(403, { message_ja: t("not_staff", {}, "ja"), message_en: t("not_staff", {}, "en") });
  document.getElementById("who").textContent = me.name;
  stops = await api.stops();
  byId = new Map(stops.map((s) => [s.id, s]));
  stores = await api.stores().catch(() => []);
  render();
  await refresh();
  startLive();
}

// The whole console in the chosen language; what was typed in its fields survives a language switch.
function render() {
  const typed = [...root.querySelectorAll("input[id], select[id]")].map((f) => [f.id, f.type === "checkbox" ? f.checked : f.value]);
  pager.setAttribute("aria-label", t("pager"));
  pending = null; // an offer shown but not confirmed is dropped with its box (search again)
  drawTitle();
  root.replaceChildren(
    el("div", { class: "left" }, bookingForm(), familyDesk()),
    el("div", { class: "right" },
      alertsBox,
      el("section", { class: "panel", "aria-labelledby": "kpi-h" }, el("h2", { id: "kpi-h" }, t("kpi_h")), kpis),
      el("section", { class: "panel", "aria-labelledby": "table-h" },
        tableTitle, searchForm(), tableAlert, tableStatus,
        // A wide table scrolls sideways: the scrolling box is reachable by the keyboard (arrow keys).
        el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": t("caption") }, el("table", { id: "bookings" },
          el("caption", { class: "visually-hidden" }, t("caption")),
          el("thead", {}, el("tr", {}, ["number", "when", "name", "route", "load", "status", "vehicle", "channel", "actions"].map((h) => el("th", { scope: "col" }, t(`col_${h}`))))),
          tbody)), pager),
      el("section", { class: "panel", "aria-labelledby": "map-h" }, el("h2", { id: "map-h" }, t("map_h")), mapBox)));
  for (const [id, v] of typed) {
    const f = document.getElementById(id);
    if (!f) continue;
    if (f.type === "checkbox") f.checked = v; else f.value = v;
    if (f.tagName === "SELECT") f.dispatchEvent(new Event("change")); // a door-to-door box opens again
  }
  alertsShown = ""; // redrawn in the new language
}

// The 日本語 / English switch in the header: remembered on this device (i18n.js), the page redrawn.
function drawChrome() {
  document.title = t("page_title");
  document.getElementById("op-title").textContent = t("title");
  const b = document.getElementById("lang-toggle");
  b.textContent = lang() === "en" ? "日本語" : "English";
  b.lang = lang() === "en" ? "ja" : "en";
  document.documentElement.lang = lang();
  if (liveStatus && liveStatus.dataset.state) { const st = liveStatus.dataset.state; liveStatus.dataset.state = ""; setStatus(st); }
}
document.getElementById("lang-toggle").addEventListener("click", async () => {
  setLang(lang() === "en" ? "ja" : "en");
  drawChrome();
  if (!stops.length) { login(); document.getElementById("lang-toggle").focus(); return; } // still signed out
  render();
  drawVehicleFilter();
  await refresh();
  drawAlerts();
  document.getElementById("lang-toggle").focus();
});

drawChrome();
if (getToken("operator")) boot().catch((e) => login(errText(e)));
else login();
