// Screen: groceries brought by the minibus, asked for exactly as a ride: the store, its order number
// or a short shopping list, where to (my stop, or home for riders registered for door-to-door), a
// delivery window I choose, the parcels and how cold they must stay → an offer (kind "delivery").
import { newKey, tokyoDate, addDays, tokyoIso, fmtDayTime, fmtTime, causeText, stopName, hm, tokyoMinutes } from "../api.js";
import { lang, el } from "../i18n.js";

export const TEMPERATURES = ["chilled", "frozen", "ambient"];
const MAX_PARCELS = 6;
const ORDER_NUMBER = /^[A-Za-z0-9-]{1,32}$/;
const LIST_MAX = 500;
const FIRST_START = 8 * 60; // the earliest window start offered (the stores open at 7:00 and 8:00)
const LAST_END = 20 * 60; // a window ends inside service hours
const WIDTHS = [60, 120]; // minutes: an hour, or two (the service allows 30 min to 4 h)

// The delivery being asked for survives moving to the stop picker and back.
export function deliveryForm(ctx) {
  if (!ctx.delivery) {
    ctx.delivery = {
      store: "", order: "", list: "", to: "stop", stop: null, address: "", lat: null, lon: null,
      day: null, start: "", width: 60, parcels: 1, temperature: "chilled", forAccount: "",
    };
  }
  return ctx.delivery;
}

// The first window start worth offering: an hour and a half from now on the half hour, else tomorrow.
function defaultStart(f) {
  const today = tokyoDate();
  const m = Math.ceil((tokyoMinutes() + 90) / 30) * 30;
  if (m + f.width <= LAST_END) return { day: today, start: hm(Math.max(m, FIRST_START)) };
  return { day: addDays(today, 1), start: hm(10 * 60) };
}

export function render(ctx, root) {
  const { t } = ctx;
  const L = lang();
  const f = deliveryForm(ctx);
  if (!f.day || !f.start) Object.assign(f, defaultStart(f));
  if (!ctx.stores) {
    ctx.api.stores().then((s) => { ctx.stores = s; ctx.rerender(); }).catch((e) => {
      root.replaceChildren(el("p", { class: "alert", role: "alert" }, e.text ? e.text(L) : String(e)));
    });
    root.append(el("p", {}, t("loading")));
    return;
  }

  const alert = el("div", { class: "alert", role: "alert", id: "delivery-error" });
  const result = el("section", { id: "delivery-no-ride", "aria-live": "polite" });

  // for whom: me, or a linked family member (their groceries, brought to them)
  const whoBox = el("div", { id: "delivery-who" });
  (async () => {
    let fam = [];
    try { fam = (await ctx.api.family()).filter((x) => x.role === "guardian"); } catch { return; }
    if (!fam.length) { f.forAccount = ""; return; }
    whoBox.replaceChildren(el("label", { for: "delivery-for" }, t("d_for_whom")),
      el("select", { id: "delivery-for", name: "delivery-for", onchange: (e) => { f.forAccount = e.target.value; } },
        el("option", { value: "", selected: !f.forAccount }, t("myself")),
        fam.map((x) => el("option", { value: x.account_id, selected: f.forAccount === x.account_id }, x.name))));
  })();

  // the store: two big buttons, its hours beside its name
  const storeBox = el("fieldset", { id: "store-choice" }, el("legend", {}, t("d_store")),
    el("div", { class: "seg stores" }, ctx.stores.map((s) => el("button", {
      type: "button", dataset: { store: s.id }, "aria-pressed": String(f.store === s.id),
      onclick: () => { f.store = s.id; ctx.rerender(); },
    }, el("span", {}, L === "en" ? s.name_en : s.name_ja),
    el("span", { class: "kana" }, t("d_hours", { open: s.opens_local, close: s.closes_local }))))));

  // what: the store's order number, or a short list sent to the store
  const order = el("input", { id: "order-number", name: "order-number", type: "text", autocomplete: "off", maxlength: "32",
    value: f.order, "aria-describedby": "order-help", oninput: (e) => { f.order = e.target.value; } });
  const list = el("textarea", { id: "shopping-list", name: "shopping-list", rows: "3", maxlength: String(LIST_MAX),
    "aria-describedby": "list-help", oninput: (e) => { f.list = e.target.value; } });
  list.value = f.list;
  const whatBox = el("fieldset", {}, el("legend", {}, t("d_what")),
    el("p", { class: "muted", id: "what-help" }, t("d_what_help")),
    el("label", { for: "order-number" }, t("d_order")), order,
    el("p", { class: "muted small", id: "order-help" }, t("d_order_help")),
    el("label", { for: "shopping-list" }, t("d_list")), list,
    el("p", { class: "muted small", id: "list-help" }, t("d_list_help", { n: LIST_MAX })));

  // where to: my stop, or home (door-to-door riders only)
  const home = !!(ctx.profile && ctx.profile.door_to_door);
  if (!home) f.to = "stop";
  const stop = ctx.stopById.get(f.stop);
  const toBox = el("fieldset", { id: "delivery-to" }, el("legend", {}, t("d_to")));
  if (home) {
    toBox.append(el("div", { class: "seg" },
      ["stop", "home"].map((w) => el("button", { type: "button", id: `to-${w}`, "aria-pressed": String(f.to === w),
        onclick: () => { f.to = w; ctx.rerender(); } }, t(w === "stop" ? "d_to_stop" : "d_to_home")))));
  }
  if (f.to === "stop") {
    toBox.append(el("button", { type: "button", class: "place-btn", id: "pick-delivery", onclick: () => ctx.go("#/pick/delivery") },
      el("span", {}, t("d_stop")), el("span", { class: "value" }, stop ? stopName(stop, L) : t("choose"))));
  } else {
    // The saved home (home.js) fills the address and the position; both stay changeable here.
    const saved = ctx.profile && ctx.profile.home;
    if (saved && (ctx.homeChanged || (f.lat == null && !f.address.trim()))) {
      Object.assign(f, { address: saved.address, lat: saved.lat, lon: saved.lon });
      ctx.homeChanged = false;
    }
    const where = el("p", { id: "home-where", "aria-live": "polite" },
      f.lat != null ? t("d_home_set", { lat: f.lat.toFixed(4), lon: f.lon.toFixed(4) }) : t("d_home_unset"));
    toBox.append(
      el("label", { for: "home-address" }, t("d_address")),
      el("input", { id: "home-address", name: "home-address", type: "text", autocomplete: "street-address", maxlength: "200",
        value: f.address, oninput: (e) => { f.address = e.target.value; } }),
      where,
      el("button", { type: "button", id: "use-location", onclick: () => {
        if (!navigator.geolocation) { alert.textContent = t("d_no_location"); return; }
        navigator.geolocation.getCurrentPosition(
          (p) => { f.lat = p.coords.latitude; f.lon = p.coords.longitude; where.textContent = t("d_home_set", { lat: f.lat.toFixed(4), lon: f.lon.toFixed(4) }); },
          () => { alert.textContent = t("d_no_location"); }, { timeout: 10000 });
      } }, t("d_use_location")),
      el("button", { type: "button", id: "home-on-map", onclick: () => { ctx.homeBack = "#/delivery"; ctx.go("#/home"); } },
        t(saved ? "h_change" : "h_set")));
  }

  // when: a day, the start of the window, its width
  const daySel = el("select", { id: "delivery-day", name: "delivery-day", onchange: (e) => { f.day = e.target.value; } });
  const today = tokyoDate();
  for (let i = 0; i < 7; i++) {
    const d = addDays(today, i);
    const label = i === 0 ? t("today") : i === 1 ? t("tomorrow") : fmtDayTime(tokyoIso(d, "12:00"), L).split(" ")[0];
    daySel.append(el("option", { value: d, selected: d === f.day }, label));
  }
  const startSel = el("select", { id: "window-start", name: "window-start", onchange: (e) => { f.start = e.target.value; } });
  for (let m = FIRST_START; m + 30 <= LAST_END; m += 30) startSel.append(el("option", { value: hm(m), selected: hm(m) === f.start }, hm(m)));
  const widthSel = el("select", { id: "window-width", name: "window-width", onchange: (e) => { f.width = Number(e.target.value); } },
    WIDTHS.map((w) => el("option", { value: String(w), selected: f.width === w }, t("d_width", { h: w / 60 }))));
  const whenBox = el("fieldset", {}, el("legend", {}, t("d_window")),
    el("p", { class: "muted" }, t("d_window_help")),
    el("div", { class: "row" },
      el("div", { class: "grow" }, el("label", { for: "delivery-day" }, t("day")), daySel),
      el("div", { class: "grow" }, el("label", { for: "window-start" }, t("d_from")), startSel),
      el("div", { class: "grow" }, el("label", { for: "window-width" }, t("d_for")), widthSel)));

  // how much and how cold
  const out = el("output", { id: "parcels", "aria-live": "polite", for: "parcels-minus parcels-plus" }, t("d_parcels_n", { n: f.parcels }));
  const setParcels = (n) => { f.parcels = Math.min(MAX_PARCELS, Math.max(1, n)); out.textContent = t("d_parcels_n", { n: f.parcels }); };
  const parcelBox = el("fieldset", {}, el("legend", {}, t("d_parcels")),
    el("p", { class: "muted small" }, t("d_parcels_help")),
    el("div", { class: "stepper" },
      el("button", { type: "button", id: "parcels-minus", "aria-label": t("d_fewer"), onclick: () => setParcels(f.parcels - 1) }, "−"),
      out,
      el("button", { type: "button", id: "parcels-plus", "aria-label": t("d_more"), onclick: () => setParcels(f.parcels + 1) }, "+")));
  const tempBox = el("fieldset", { id: "temperature" }, el("legend", {}, t("d_temperature")),
    TEMPERATURES.map((x) => el("div", { class: "check" },
      el("input", { type: "radio", name: "temperature", id: `temp-${x}`, value: x, checked: f.temperature === x,
        onchange: () => { f.temperature = x; } }),
      el("label", { for: `temp-${x}` }, t(`temp_${x}`)))),
    el("p", { class: "muted small" }, t("d_temperature_help")));

  const submit = el("button", { type: "submit", class: "primary", id: "delivery-search" }, t("d_search"));
  const formEl = el("form", { class: "card", novalidate: true, id: "delivery-form", onsubmit: (e) => { e.preventDefault(); search(); } },
    el("h2", { id: "delivery-title", tabindex: "-1" }, t("d_title")),
    el("p", {}, t("d_intro")),
    whoBox, storeBox, whatBox, toBox, whenBox, parcelBox, tempBox, alert,
    el("div", { class: "actions" }, submit));
  root.append(formEl, result);
  if (ctx.autoSearch) { ctx.autoSearch = false; search(); }

  function problems() {
    const out = [];
    if (!f.store) out.push(t("d_need_store"));
    const o = f.order.trim();
    const l = f.list.trim();
    if (!o && !l) out.push(t("d_need_what"));
    if (o && !ORDER_NUMBER.test(o)) out.push(t("d_bad_order"));
    if (l.length > LIST_MAX) out.push(t("d_list_long", { n: LIST_MAX }));
    if (f.to === "stop" && !f.stop) out.push(t("d_need_stop"));
    if (f.to === "home" && (f.lat == null || !f.address.trim())) out.push(t("d_need_home"));
    const [h, m] = f.start.split(":").map(Number);
    if (h * 60 + m + f.width > LAST_END) out.push(t("d_window_late"));
    return out;
  }

  async function search() {
    alert.textContent = "";
    result.replaceChildren();
    const bad = problems();
    if (bad.length) { alert.textContent = bad.join(" "); return; }
    const [h, m] = f.start.split(":").map(Number);
    const delivery = {
      store_id: f.store, window_start: tokyoIso(f.day, f.start), window_end: tokyoIso(f.day, hm(h * 60 + m + f.width)),
      parcels: f.parcels, temperature: f.temperature,
    };
    if (f.order.trim()) delivery.order_number = f.order.trim();
    if (f.list.trim()) delivery.shopping_list = f.list.trim();
    const req = {
      kind: "delivery",
      destination: f.to === "home" ? { lat: f.lat, lon: f.lon, address: f.address.trim() } : { stop_id: f.stop },
      delivery,
    };
    if (f.forAccount) req.for_account_id = f.forAccount;
    submit.disabled = true;
    submit.textContent = t("searching");
    try {
      const offer = await ctx.api.offer(req);
      ctx.offer = { offer, key: newKey(), request: req };
      ctx.go("#/offer");
    } catch (e) {
      submit.disabled = false;
      submit.textContent = t("d_search");
      showError(e);
    }
  }

  // Another window of the same width starting at `iso`, searched at once.
  const retryAt = (iso) => {
    const d = new Date(iso);
    f.day = tokyoDate(d);
    const start = Math.max(FIRST_START, Math.ceil(tokyoMinutes(d) / 30) * 30);
    f.start = hm(Math.min(start, LAST_END - f.width));
    ctx.autoSearch = true;
    ctx.rerender();
  };

  function showError(e) {
    if (e.code === "NoRideAvailable") {
      const alts = [...(e.body.alternatives || [])].sort((a, b) => new Date(a) - new Date(b));
      result.append(el("div", { class: "card stack", role: "alert" },
        el("h2", { id: "no-ride-title", tabindex: "-1" }, t("d_no_ride")),
        el("p", { id: "cause" }, causeText(e.body.cause, L)),
        alts.length ? el("p", {}, t("d_alts_intro")) : el("p", {}, t("no_alts")),
        el("div", { class: "alts" }, alts.map((iso) => el("button", {
          type: "button", class: "primary alt", dataset: { time: iso }, onclick: () => retryAt(iso),
        }, t("d_alt_button", { when: fmtDayTime(iso, L) }))))));
      result.querySelector("#no-ride-title").focus();
      return;
    }
    alert.textContent = e.text ? e.text(L) : String(e);
    if (e.code === "DeliveryTooSoon" && e.body.earliest_window_end) {
      const start = new Date(new Date(e.body.earliest_window_end).getTime() - f.width * 60000);
      alert.append(el("br"), el("button", { type: "button", class: "primary", id: "later-window", onclick: () => retryAt(start.toISOString()) },
        t("d_later", { when: fmtTime(start.toISOString()) })));
    }
  }
}
