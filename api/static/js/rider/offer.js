// Screen: the offer (pickup window, latest arrival, fare) and one confirm button.
import { fmtTime, fmtDayTime } from "../api.js";
import { lang, el } from "../i18n.js";
import { placeText, storeName } from "./parcel.js";

export function render(ctx, root) {
  const { t } = ctx;
  const L = lang();
  if (!ctx.offer) { ctx.go("#/new"); return; }
  const { offer, key } = ctx.offer;
  if (offer.kind === "delivery") { renderDelivery(ctx, root); return; }
  const alert = el("div", { class: "alert", role: "alert", id: "offer-error" });
  const btn = el("button", { type: "button", class: "primary", id: "confirm" }, t("confirm"));
  let busy = false;

  btn.addEventListener("click", async () => {
    if (busy) return; // a second tap while the first is on its way does nothing
    busy = true;
    btn.disabled = true;
    btn.textContent = t("confirming");
    alert.textContent = "";
    try {
      const b = await ctx.api.confirm(offer.offer_id, key);
      ctx.offer = null;
      ctx.justBooked = b.id;
      ctx.go(`#/booking/${b.id}`);
    } catch (e) {
      busy = false;
      btn.disabled = false;
      btn.textContent = t("confirm");
      alert.textContent = e.code === "OfferExpired" ? t("expired") : e.text ? e.text(L) : String(e);
    }
  });

  root.append(el("section", { class: "card", "aria-labelledby": "offer-title" },
    el("h2", { id: "offer-title", tabindex: "-1" }, t("offer_title")),
    el("p", {}, t("pickup_window")),
    el("p", { class: "big-time", id: "pickup-window" },
      `${fmtTime(offer.pickup_window_start)} 〜 ${fmtTime(offer.pickup_window_end)}`),
    el("p", { class: "muted" }, fmtDayTime(offer.pickup_window_start, L).split(" ")[0]),
    el("dl", { class: "facts" },
      el("dt", {}, t("origin")), el("dd", { id: "offer-from" }, placeText(ctx, offer.origin, L)),
      el("dt", {}, t("destination")), el("dd", { id: "offer-to" }, placeText(ctx, offer.destination, L)),
      el("dt", {}, t("latest_arrival")), el("dd", { id: "latest-arrival" }, fmtTime(offer.latest_dropoff)),
      el("dt", {}, t("people")), el("dd", {}, t("persons", { n: offer.party_size })),
      offer.wheelchairs ? [el("dt", {}, t("wheelchairs")), el("dd", {}, String(offer.wheelchairs))] : null,
      el("dt", {}, t("fare")), el("dd", { id: "fare" }, offer.fare_yen === 0 ? t("fare_free") : `${offer.fare_yen}円`)),
    el("p", { class: "muted" }, t("offer_expires", { time: fmtTime(offer.expires_at) })),
    alert,
    el("div", { class: "actions" }, btn,
      el("button", { type: "button", id: "change", onclick: () => ctx.go("#/new") }, t("change")))));
  root.querySelector("#offer-title").focus();
}

// A delivery's offer: the window the groceries arrive in (the promise), from which store, to where.
function renderDelivery(ctx, root) {
  const { t } = ctx;
  const L = lang();
  const { offer, key, request } = ctx.offer;
  const alert = el("div", { class: "alert", role: "alert", id: "offer-error" });
  const btn = el("button", { type: "button", class: "primary", id: "confirm" }, t("d_confirm"));
  let busy = false;
  btn.addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    btn.disabled = true;
    btn.textContent = t("confirming");
    alert.textContent = "";
    try {
      const b = await ctx.api.confirm(offer.offer_id, key);
      ctx.offer = null;
      ctx.delivery = null; // the next order starts afresh
      ctx.justBooked = b.id;
      ctx.go(`#/parcel/${b.id}`);
    } catch (e) {
      busy = false;
      btn.disabled = false;
      btn.textContent = t("d_confirm");
      alert.textContent = e.code === "OfferExpired" ? t("expired") : e.text ? e.text(L) : String(e);
    }
  });
  const d = request.delivery;
  root.append(el("section", { class: "card", "aria-labelledby": "offer-title" },
    el("h2", { id: "offer-title", tabindex: "-1" }, t("d_offer_title")),
    el("p", {}, t("d_window_is")),
    el("p", { class: "big-time", id: "delivery-window" },
      `${fmtTime(offer.delivery_window_start)} 〜 ${fmtTime(offer.delivery_window_end)}`),
    el("p", { class: "muted" }, fmtDayTime(offer.delivery_window_start, L).split(" ")[0]),
    el("dl", { class: "facts" },
      el("dt", {}, t("d_store")), el("dd", { id: "offer-store" }, storeName(ctx, offer.store_id, L)),
      el("dt", {}, t("d_to")), el("dd", { id: "offer-to" }, placeText(ctx, offer.destination, L)),
      d.order_number ? [el("dt", {}, t("d_order")), el("dd", { id: "offer-order" }, d.order_number)] : null,
      d.shopping_list ? [el("dt", {}, t("d_list")), el("dd", { id: "offer-list" }, d.shopping_list)] : null,
      el("dt", {}, t("d_parcels")), el("dd", {}, t("d_parcels_n", { n: offer.parcels })),
      el("dt", {}, t("d_temperature")), el("dd", {}, t(`temp_${d.temperature}`)),
      el("dt", {}, t("d_fee")), el("dd", { id: "fare" }, offer.fare_yen === 0 ? t("fare_free") : `${offer.fare_yen}円`)),
    el("p", {}, t("d_offer_note")),
    el("p", { class: "muted" }, t("offer_expires", { time: fmtTime(offer.expires_at) })),
    alert,
    el("div", { class: "actions" }, btn,
      el("button", { type: "button", id: "change", onclick: () => ctx.go("#/delivery") }, t("change")))));
  root.querySelector("#offer-title").focus();
}
