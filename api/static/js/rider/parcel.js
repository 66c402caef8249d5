// Screen: one delivery, live: where the groceries are (ordered → ready → picked up → delivered, or
// returned), the four-digit handover code shown large for the recipient to show the driver, the
// window, the store, the booking number; cancel (two steps) until the minibus has picked it up;
// once on the minibus, where it goes back if it cannot be handed over (the store or a stop, confirmed).
import { fmtTime, fmtDayTime, stopName, ZONES } from "../api.js";
import { watchBooking } from "../socket.js";
import { lang, el } from "../i18n.js";

const STEPS = ["ordered", "ready", "picked_up", "delivered"];
// How each status shows on the steps: the last step is replaced when the goods went back.
const LAST = { delivered: "delivered", returning: "returning", returned: "returned", locked: "locked" };
const DONE = new Set(["delivered", "returned", "cancelled"]);
const CODE_SHOWN = new Set(["ordered", "ready", "picked_up"]);
const CANCELLABLE = new Set(["ordered", "ready"]);
// On the minibus and not handed over: the recipient may say where it goes back (docs/goods.md).
const RETURNABLE = new Set(["picked_up", "returning", "locked"]);

export function storeName(ctx, id, L) {
  const s = (ctx.stores || []).find((x) => x.id === id);
  return s ? (L === "en" ? s.name_en : s.name_ja) : id;
}

// A delivery's place: its stop's name, or home (with the address when it is known).
export function placeText(ctx, p, L) {
  if (p && p.stop_id) return stopName(ctx.stopById.get(p.stop_id), L);
  return p && p.address ? `${ctx.t("d_home")}(${p.address})` : ctx.t("d_home");
}

export function render(ctx, root, id) {
  const { t } = ctx;
  const L = lang();
  const alert = el("div", { class: "alert", role: "alert", id: "parcel-error" });
  const status = el("div", { role: "status", id: "parcel-status-live" });
  const title = el("h2", { id: "parcel-title", tabindex: "-1" }, t("p_title"));
  const codeBox = el("div", { id: "code-box" });
  const body = el("div", { id: "parcel-body" }, el("p", {}, t("loading")));
  const actions = el("div", { class: "actions", id: "parcel-actions" });
  root.append(el("section", { class: "card" }, title, status, codeBox, body, alert, actions));
  if (ctx.justBooked === id) { status.textContent = t("d_booked_ok"); ctx.justBooked = null; }
  if (!ctx.stores) ctx.api.stores().then((s) => { ctx.stores = s; if (current) draw(); }).catch(() => {});
  let current = null; // the booking, with `dstatus`, `code` and the status message merged in
  let asking = false;
  let back = null; // the return chooser: null, {step: "choose"}, or {step: "confirm", stopId, place}
  let drawn = "";

  const merge = (p) => {
    current = { ...(current || {}), ...p };
    const d = p.delivery;
    if (d) Object.assign(current, { dstatus: d.status, code: d.handover_code, msg_ja: d.message_ja, msg_en: d.message_en });
    if (p.delivery_status) Object.assign(current, { dstatus: p.delivery_status, code: p.handover_code });
    if (p.delivery_status && p.live_message_ja) Object.assign(current, { msg_ja: p.live_message_ja, msg_en: p.live_message_en });
  };

  const stepList = (s) => {
    const last = LAST[s] || "delivered";
    const steps = [...STEPS.slice(0, 3), last];
    const at = s === "cancelled" ? -1 : steps.indexOf(s === "locked" ? "locked" : s);
    return el("ol", { class: "steps", id: "parcel-steps", "aria-label": t("p_steps") }, steps.map((x, i) => el("li", {
      class: i < at ? "done" : i === at ? "now" : "todo", dataset: { step: x }, "aria-current": i === at ? "step" : null,
    }, el("span", { class: "mark", "aria-hidden": "true" }, i < at || (i === at && DONE.has(x)) ? "✓" : i === at ? "●" : "○"),
    " ", t(`ds_${x}`), i === at ? el("span", { class: "visually-hidden" }, ` (${t("p_now")})`) : null)));
  };

  const draw = () => {
    const b = current;
    const d = b.delivery || {};
    const s = b.dstatus || d.status || "ordered";
    const key = JSON.stringify([s, b.status, b.code, asking, back, d.return_stop_id, b.vehicle_id, b.eta_dropoff, b.msg_ja, !!ctx.stores]);
    if (key === drawn) return; // nothing the page shows has changed (a moving minibus, a ping)
    drawn = key;
    // the code: only while it can still be asked for, never after the handover
    if (b.code && CODE_SHOWN.has(s)) {
      codeBox.replaceChildren(el("div", { class: "handover", "aria-labelledby": "code-label", role: "group" },
        el("p", { id: "code-label" }, t("p_code")),
        el("p", { class: "code", id: "handover-code", "aria-hidden": "true" }, b.code),
        el("p", { class: "visually-hidden", id: "handover-code-spoken" }, b.code.split("").join(" ")),
        el("p", { class: "code-note", id: "code-note" }, t("p_code_note"))));
    } else codeBox.replaceChildren();
    const live = CANCELLABLE.has(s) && (b.status === "confirmed" || b.status === "arriving");
    actions.replaceChildren();
    if (live) {
      if (!asking) {
        actions.append(el("button", { type: "button", class: "danger", id: "cancel", onclick: () => { asking = true; draw(); root.querySelector("#cancel-yes").focus(); } }, t("p_cancel")));
      } else {
        actions.append(
          el("p", { id: "cancel-q", role: "alert" }, t("p_cancel_q")),
          el("button", { type: "button", class: "danger primary", id: "cancel-yes", onclick: doCancel }, t("cancel_yes")),
          el("button", { type: "button", id: "cancel-no", onclick: () => { asking = false; draw(); } }, t("cancel_no")));
      }
    }
    if (RETURNABLE.has(s) && b.status === "on_board") {
      if (back) actions.append(returnBox(d));
      else actions.append(el("button", { type: "button", id: "return-open", onclick: () => { back = { step: "choose" }; draw(); root.querySelector("#return-title").focus(); } },
        t(s === "picked_up" ? "r_cant" : "r_change")));
    }
    actions.append(el("a", { class: "button", href: "#/bookings", id: "to-list" }, t("to_list")));
    const msg = L === "en" ? b.msg_en : b.msg_ja;
    const start = d.window_start || b.pickup_window_start;
    const end = d.window_end || b.latest_dropoff;
    const forOther = b.account_id && ctx.me && b.account_id !== ctx.me.account_id;
    const eta = b.eta_dropoff || d.planned_dropoff || b.planned_dropoff;
    body.replaceChildren(...[
      el("p", {}, el("span", { class: `badge d-${s}`, id: "parcel-status" }, t(`ds_${s}`))),
      msg ? el("p", { id: "parcel-message" }, msg) : null,
      stepList(s),
      b.number ? el("p", { class: "number" }, `${t("number")}: `, el("strong", { id: "booking-number" }, b.number)) : null,
      el("p", {}, t("d_window_is")),
      el("p", { class: "big-time", id: "parcel-window" }, `${fmtTime(start)} 〜 ${fmtTime(end)}`),
      el("p", { class: "muted" }, fmtDayTime(start, L).split(" ")[0]),
      el("dl", { class: "facts" },
        forOther ? [el("dt", {}, t("d_recipient")), el("dd", { id: "recipient" }, b.passenger_name)] : null,
        el("dt", {}, t("d_store")), el("dd", { id: "parcel-store" }, d.store_id ? storeName(ctx, d.store_id, L) : "…"),
        el("dt", {}, t("d_to")), el("dd", { id: "parcel-to" }, placeText(ctx, b.destination, L)),
        d.order_number ? [el("dt", {}, t("d_order")), el("dd", {}, d.order_number)] : null,
        d.shopping_list ? [el("dt", {}, t("d_list")), el("dd", {}, d.shopping_list)] : null,
        el("dt", {}, t("d_parcels")), el("dd", {}, t("d_parcels_n", { n: d.parcels || b.parcels })),
        d.temperature ? [el("dt", {}, t("d_temperature")), el("dd", {}, t(`temp_${d.temperature}`))] : null,
        d.return_stop_id && s !== "delivered" ? [el("dt", {}, t("r_back_to")), el("dd", { id: "return-place" }, returnPlace(d, d.return_stop_id))] : null,
        s === "picked_up" && eta ? [el("dt", {}, t("p_eta")), el("dd", { id: "parcel-eta" }, fmtTime(eta))] : null,
        b.vehicle_id && !DONE.has(s) ? [el("dt", {}, t("vehicle")), el("dd", {}, (L === "en" ? b.vehicle_name_en : b.vehicle_name_ja) || b.vehicle_id)] : null),
      !DONE.has(s) ? el("p", { class: "muted" }, "⟳ ", t("live")) : null].filter(Boolean));
  };

  // A stop of the return: the store's own stop is named as the store.
  const returnPlace = (d, stopId) => {
    const store = (ctx.stores || []).find((x) => x.id === d.store_id);
    if (!stopId || (store && store.stop_id === stopId)) return storeName(ctx, d.store_id, L);
    return stopName(ctx.stopById.get(stopId), L);
  };

  // Choose (the store, or a stop from the list) → confirm → told where it goes.
  const returnBox = (d) => {
    const head = el("h3", { id: "return-title", tabindex: "-1" }, t("r_title"));
    if (back.step === "confirm") {
      return el("div", { class: "card return-box", id: "return-box", role: "group", "aria-labelledby": "return-title" }, head,
        el("p", { id: "return-q" }, t("r_confirm_q", { place: back.place })),
        el("button", { type: "button", class: "primary", id: "return-yes", onclick: doReturn }, t("r_yes")),
        el("button", { type: "button", id: "return-again", onclick: () => { back = { step: "choose" }; draw(); root.querySelector("#return-title").focus(); } }, t("r_again")));
    }
    const store = (ctx.stores || []).find((x) => x.id === d.store_id);
    const select = el("select", { id: "return-stop", name: "return-stop", disabled: true }, el("option", { value: "" }, t("choose")));
    for (const zone of Object.keys(ZONES)) {
      const g = el("optgroup", { label: ZONES[zone][L] });
      for (const st of ctx.stops.filter((x) => x.zone === zone && (!store || x.id !== store.stop_id))) g.append(el("option", { value: st.id }, stopName(st, L)));
      if (g.children.length) select.append(g);
    }
    const toStore = el("input", { type: "radio", name: "return-to", id: "return-to-store", value: "store", checked: true });
    const toStop = el("input", { type: "radio", name: "return-to", id: "return-to-stop", value: "stop" });
    for (const r of [toStore, toStop]) r.addEventListener("change", () => { select.disabled = !toStop.checked; });
    const err = el("p", { class: "alert", role: "alert", id: "return-error" });
    const form = el("form", { id: "return-form", class: "card return-box", "aria-labelledby": "return-title", novalidate: true }, head,
      el("p", { id: "return-help" }, t("r_help")),
      el("fieldset", {}, el("legend", { class: "visually-hidden" }, t("r_title")),
        el("div", { class: "check" }, toStore, el("label", { for: "return-to-store" }, t("r_store", { store: storeName(ctx, d.store_id, L) }))),
        el("div", { class: "check" }, toStop, el("label", { for: "return-to-stop" }, t("r_stop")))),
      el("label", { for: "return-stop" }, t("r_stop_label")), select, err,
      el("button", { type: "submit", class: "primary", id: "return-next" }, t("r_next")),
      el("button", { type: "button", id: "return-close", onclick: () => { back = null; draw(); const o = root.querySelector("#return-open"); if (o) o.focus(); } }, t("r_close")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (toStop.checked && !select.value) { err.textContent = t("r_need_stop"); select.focus(); return; }
      const stopId = toStop.checked ? select.value : null;
      back = { step: "confirm", stopId, place: stopId ? returnPlace(d, stopId) : storeName(ctx, d.store_id, L) };
      draw();
      root.querySelector("#return-yes").focus();
    });
    return form;
  };

  async function doReturn() {
    const yes = root.querySelector("#return-yes");
    if (yes) yes.disabled = true;
    alert.textContent = "";
    const place = back.place;
    try {
      const d = await ctx.api.returnDelivery(id, back.stopId);
      merge({ delivery: { ...(current.delivery || {}), ...d } });
      back = null;
      draw();
      status.textContent = t("r_done", { place });
      title.focus();
    } catch (e) {
      alert.textContent = e.text ? e.text(L) : String(e);
      if (yes) yes.disabled = false;
    }
  }

  async function doCancel() {
    const yes = root.querySelector("#cancel-yes");
    if (yes) yes.disabled = true;
    alert.textContent = "";
    try {
      merge(await ctx.api.cancel(id, "rider"));
      asking = false;
      draw();
      status.textContent = t("p_cancelled_ok");
      title.focus();
    } catch (e) {
      alert.textContent = e.text ? e.text(L) : String(e);
      if (yes) yes.disabled = false;
    }
  }

  const stop = watchBooking(ctx.api, id, {
    booking: (b) => { merge(b); if (!asking && !back) draw(); },
    patch: (p) => { merge(p); if (current.destination && !asking && !back) draw(); },
    error: (e) => { if (!current) alert.textContent = e.text ? e.text(L) : String(e); },
  });
  title.focus();
  return () => stop();
}
