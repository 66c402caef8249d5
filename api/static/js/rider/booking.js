// Screen: one booking, live: status, the booking number, pickup and arrival times (each labelled),
// the minibus on a map, a "nearly there" notice N minutes ahead; cancel (two steps), save as a
// favourite, book the same trip again.
import { fmtTime, fmtDayTime, statusText, stopName } from "../api.js";
import { watchBooking } from "../socket.js";
import { lang, el } from "../i18n.js";
import { createMap } from "./map.js";
import { placeText } from "./parcel.js";

const CANCELLABLE = new Set(["confirmed", "arriving"]);
const STRUCTURAL = ["status", "eta", "eta_dropoff", "at_risk", "vehicle_id", "vehicle_name_ja", "pickup_window_start",
  "pickup_window_end", "latest_dropoff"];

export function render(ctx, root, id) {
  const { t } = ctx;
  const L = lang();
  const alert = el("div", { class: "alert", role: "alert", id: "booking-error" });
  const status = el("div", { role: "status", id: "booking-status-live" });
  const nearBox = el("div", { id: "near-box", role: "alert" });
  const body = el("div", { id: "booking-body" }, el("p", {}, t("loading")));
  const title = el("h2", { id: "booking-title", tabindex: "-1" }, t("booking_title"));
  const mapSlot = el("div", { id: "map-slot" });
  const actions = el("div", { class: "actions", id: "booking-actions" });
  root.append(el("section", { class: "card" }, title, status, nearBox, body, mapSlot, alert, actions));
  if (ctx.justBooked === id) { status.textContent = t("booked_ok"); ctx.justBooked = null; }
  let current = null;
  let asking = false;
  let map = null;

  const nearMinutes = () => (ctx.profile && ctx.profile.near_minutes) || 5;

  const drawNear = (b) => {
    let text = "";
    if (b.status === "arriving") text = t("arriving_now");
    else if (b.status === "confirmed" && b.minutes_away != null && b.minutes_away <= nearMinutes()) {
      text = t("near", { n: Math.max(1, b.minutes_away) });
    }
    if (nearBox.textContent !== text) {
      nearBox.replaceChildren(...(text ? [el("p", { class: "notice", id: "near-notice" }, text)] : []));
    }
  };

  const draw = () => {
    const b = current;
    const from = ctx.stopById.get(b.origin.stop_id);
    const to = ctx.stopById.get(b.destination.stop_id);
    const live = CANCELLABLE.has(b.status);
    const eta = b.eta || b.planned_pickup;
    const etaDrop = b.eta_dropoff || b.planned_dropoff;
    actions.replaceChildren();
    if (live) {
      if (!asking) {
        actions.append(el("button", { type: "button", class: "danger", id: "cancel", onclick: () => { asking = true; draw(); root.querySelector("#cancel-yes").focus(); } }, t("cancel")));
      } else {
        actions.append(
          el("p", { id: "cancel-q", role: "alert" }, t("cancel_q")),
          el("button", { type: "button", class: "danger primary", id: "cancel-yes", onclick: doCancel }, t("cancel_yes")),
          el("button", { type: "button", id: "cancel-no", onclick: () => { asking = false; draw(); } }, t("cancel_no")));
      }
    }
    if (b.origin.stop_id && b.destination.stop_id) {
      actions.append(
        el("button", { type: "button", id: "book-again", onclick: () => bookAgain(ctx, b) }, t("book_again")),
        el("button", { type: "button", id: "save-favourite", onclick: saveFavourite }, t("save_favourite")));
    }
    actions.append(el("a", { class: "button", href: "#/bookings", id: "to-list" }, t("to_list")));
    const forOther = b.account_id && ctx.me && b.account_id !== ctx.me.account_id;
    body.replaceChildren(...[
      el("p", {}, el("span", { class: `badge ${b.status}`, id: "booking-status" }, statusText(b.status, L))),
      b.number ? el("p", { class: "number" }, `${t("number")}: `, el("strong", { id: "booking-number" }, b.number)) : null,
      el("p", {}, t("pickup_window")),
      el("p", { class: "big-time", id: "booking-window" }, `${fmtTime(b.pickup_window_start)} 〜 ${fmtTime(b.pickup_window_end)}`),
      el("p", { class: "muted" }, fmtDayTime(b.pickup_window_start, L).split(" ")[0]),
      el("dl", { class: "facts" },
        forOther ? [el("dt", {}, t("booked_for")), el("dd", { id: "passenger" }, b.passenger_name)] : null,
        el("dt", {}, t("origin")), el("dd", {}, placeText(ctx, b.origin, L)),
        el("dt", {}, t("destination")), el("dd", {}, placeText(ctx, b.destination, L)),
        live && eta ? [el("dt", {}, t("eta")), el("dd", { id: "eta" }, fmtTime(eta))] : null,
        live && etaDrop ? [el("dt", {}, t("eta_dropoff")), el("dd", { id: "eta-dropoff" }, fmtTime(etaDrop))] : null,
        el("dt", {}, t("latest_arrival")), el("dd", { id: "latest-dropoff" }, fmtTime(b.latest_dropoff)),
        el("dt", {}, t("people")), el("dd", {}, t("persons", { n: b.party_size })),
        b.vehicle_id ? [el("dt", {}, t("vehicle")), el("dd", {}, (L === "en" ? b.vehicle_name_en : b.vehicle_name_ja) || b.vehicle_id)] : null),
      b.at_risk ? el("p", { class: "notice", role: "alert", id: "at-risk" }, (L === "en" ? b.live_message_en : b.live_message_ja) || t("late")) : null,
      live ? el("p", {}, t("be_there")) : null,
      live ? el("p", { class: "muted" }, "⟳ ", t("live")) : null].filter(Boolean));
    drawNear(b);
    if (live && !map) {
      // A door-to-door place (no stop) is drawn at its point, named 自宅(address).
      const point = (p, stop) => stop || (p.lat != null ? { lat: p.lat, lon: p.lon, name_ja: placeText(ctx, p, L), name_en: placeText(ctx, p, L) } : null);
      map = createMap(ctx, { origin: point(b.origin, from), destination: point(b.destination, to) });
      mapSlot.replaceChildren(map.element);
      map.attach();
    }
    if (!live && map) { map.destroy(); map = null; mapSlot.replaceChildren(); }
    if (map) map.update(b);
  };

  async function saveFavourite() {
    alert.textContent = "";
    const b = current;
    const from = ctx.stopById.get(b.origin.stop_id);
    const to = ctx.stopById.get(b.destination.stop_id);
    try {
      await ctx.api.addFavourite({ label: `${stopName(from, L)} → ${stopName(to, L)}`, origin_stop_id: b.origin.stop_id,
        destination_stop_id: b.destination.stop_id, party_size: b.party_size, wheelchairs: b.wheelchairs || 0 });
      status.textContent = t("saved_favourite");
    } catch (e) { alert.textContent = e.text ? e.text(L) : String(e); }
  }

  async function doCancel() {
    const yes = root.querySelector("#cancel-yes");
    if (yes) yes.disabled = true;
    alert.textContent = "";
    try {
      current = { ...current, ...(await ctx.api.cancel(id, "rider")) };
      asking = false;
      draw();
      status.textContent = t("cancelled_ok");
    } catch (e) {
      alert.textContent = e.text ? e.text(L) : String(e);
      if (yes) yes.disabled = false;
    }
  }

  const stop = watchBooking(ctx.api, id, {
    // REST answers and live messages merge in arrival order; draw once the full booking is known.
    booking: (b) => {
      if (b.kind === "delivery") { ctx.go(`#/parcel/${id}`); return; } // groceries have their own screen
      current = { ...(current || {}), ...b };
      if (!asking) draw();
    },
    patch: (p) => {
      const before = current || {};
      current = { ...before, ...p };
      if (!current.origin || current.kind === "delivery") return;
      // A moving minibus only moves the marker and the notice: the buttons (and the focus) stay.
      const changed = STRUCTURAL.some((k) => k in p && p[k] !== before[k]);
      if (changed && !asking) draw(); else { drawNear(current); if (map) map.update(current); }
    },
    error: (e) => { if (!current) alert.textContent = e.text ? e.text(L) : String(e); },
  });
  title.focus();
  return () => { stop(); if (map) map.destroy(); };
}

// Fill the request form with a past trip (same stops, people, wheelchair, passenger) and open it.
export function bookAgain(ctx, b) {
  Object.assign(ctx.form, {
    origin: b.origin.stop_id, destination: b.destination.stop_id, party: b.party_size,
    wheelchair: (b.wheelchairs || 0) > 0, mode: "now",
    forAccount: ctx.me && b.account_id && b.account_id !== ctx.me.account_id ? b.account_id : "",
  });
  ctx.go("#/new");
}
