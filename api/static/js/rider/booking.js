// Screen: one booking with live status and ETA; cancel with an explicit second step.
import { fmtTime, fmtDayTime, statusText, stopName } from "../api.js";
import { watchBooking } from "../socket.js";
import { lang, el } from "../i18n.js";

const CANCELLABLE = new Set(["confirmed", "arriving"]);

export function render(ctx, root, id) {
  const { t } = ctx;
  const L = lang();
  const alert = el("div", { class: "alert", role: "alert", id: "booking-error" });
  const status = el("div", { role: "status", id: "booking-status-live" });
  const body = el("div", { id: "booking-body" }, el("p", {}, t("loading")));
  const title = el("h2", { id: "booking-title", tabindex: "-1" }, t("booking_title"));
  root.append(el("section", { class: "card" }, title, status, body, alert));
  if (ctx.justBooked === id) { status.textContent = t("booked_ok"); ctx.justBooked = null; }
  let current = null;
  let asking = false;

  const draw = () => {
    const b = current;
    const from = ctx.stopById.get(b.origin.stop_id);
    const to = ctx.stopById.get(b.destination.stop_id);
    const eta = b.eta || b.planned_pickup;
    const actions = el("div", { class: "actions" });
    if (CANCELLABLE.has(b.status)) {
      if (!asking) {
        actions.append(el("button", { type: "button", class: "danger", id: "cancel", onclick: () => { asking = true; draw(); root.querySelector("#cancel-yes").focus(); } }, t("cancel")));
      } else {
        actions.append(
          el("p", { id: "cancel-q", role: "alert" }, t("cancel_q")),
          el("button", { type: "button", class: "danger primary", id: "cancel-yes", onclick: doCancel }, t("cancel_yes")),
          el("button", { type: "button", id: "cancel-no", onclick: () => { asking = false; draw(); } }, t("cancel_no")));
      }
    }
    actions.append(el("a", { class: "button", href: "#/bookings", id: "to-list" }, t("to_list")));
    body.replaceChildren(...[
      el("p", {}, el("span", { class: `badge ${b.status}`, id: "booking-status" }, statusText(b.status, L))),
      el("p", {}, t("pickup_window")),
      el("p", { class: "big-time", id: "booking-window" }, `${fmtTime(b.pickup_window_start)} 〜 ${fmtTime(b.pickup_window_end)}`),
      el("p", { class: "muted" }, fmtDayTime(b.pickup_window_start, L).split(" ")[0]),
      el("dl", { class: "facts" },
        el("dt", {}, t("origin")), el("dd", {}, stopName(from, L)),
        el("dt", {}, t("destination")), el("dd", {}, stopName(to, L)),
        CANCELLABLE.has(b.status) && eta ? [el("dt", {}, t("eta")), el("dd", { id: "eta" }, fmtTime(eta))] : null,
        el("dt", {}, t("latest_arrival")), el("dd", {}, fmtTime(b.latest_dropoff)),
        el("dt", {}, t("people")), el("dd", {}, t("persons", { n: b.party_size })),
        b.vehicle_id ? [el("dt", {}, t("vehicle")), el("dd", {}, (L === "en" ? b.vehicle_name_en : b.vehicle_name_ja) || b.vehicle_id)] : null),
      b.at_risk ? el("p", { class: "notice", role: "alert", id: "at-risk" }, (L === "en" ? b.live_message_en : b.live_message_ja) || t("late")) : null,
      CANCELLABLE.has(b.status) ? el("p", {}, t("be_there")) : null,
      CANCELLABLE.has(b.status) ? el("p", { class: "muted" }, "⟳ ", t("live")) : null,
      actions].filter(Boolean));
  };

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
    booking: (b) => { current = { ...(current || {}), ...b }; if (!asking) draw(); },
    patch: (p) => { current = { ...(current || {}), ...p }; if (current.origin && !asking) draw(); },
    error: (e) => { if (!current) alert.textContent = e.text ? e.text(L) : String(e); },
  });
  title.focus();
  return stop;
}
