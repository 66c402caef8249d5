// Screen: my bookings (and those I made for family), upcoming first; "book again" on each.
import { fmtTime, fmtDayTime, statusText } from "../api.js";
import { lang, el } from "../i18n.js";
import { bookAgain } from "./booking.js";
import { placeText, storeName } from "./parcel.js";

const ACTIVE = new Set(["confirmed", "arriving", "on_board"]);

export function render(ctx, root) {
  const { t } = ctx;
  const L = lang();
  const alert = el("div", { class: "alert", role: "alert", id: "list-error" });
  const box = el("div", { id: "booking-list" }, el("p", {}, t("loading")));
  root.append(el("section", {}, el("h2", {}, t("list_title")), alert, box,
    el("div", { class: "actions" }, el("a", { class: "button primary", href: "#/new" }, t("new_booking")))));

  // A delivery: its status in the goods' words, from the store to me, inside its window.
  const parcelItem = (b) => {
    const d = b.delivery || {};
    const forOther = ctx.me && b.account_id && b.account_id !== ctx.me.account_id;
    return el("li", { class: "card" },
      el("a", { href: `#/parcel/${b.id}`, dataset: { booking: b.id } },
        el("span", { class: `badge d-${d.status}` }, t(`ds_${d.status || "ordered"}`)), " ",
        el("span", { class: "kind" }, t("d_kind")), " ",
        b.number ? el("span", { class: "number" }, `${t("number")} ${b.number}`) : null,
        el("br"),
        el("strong", {}, `${fmtDayTime(d.window_start || b.pickup_window_start, L)} 〜 ${fmtTime(d.window_end || b.latest_dropoff)}`), el("br"),
        `${storeName(ctx, d.store_id, L)} → ${placeText(ctx, b.destination, L)}`,
        forOther ? [el("br"), t("for_name", { name: b.passenger_name })] : null));
  };

  const item = (b) => {
    if (b.kind === "delivery") return parcelItem(b);
    const forOther = ctx.me && b.account_id && b.account_id !== ctx.me.account_id;
    return el("li", { class: "card" },
      el("a", { href: `#/booking/${b.id}`, dataset: { booking: b.id } },
        el("span", { class: `badge ${b.status}` }, statusText(b.status, L)), " ",
        b.number ? el("span", { class: "number" }, `${t("number")} ${b.number}`) : null,
        el("br"),
        el("strong", {}, `${fmtDayTime(b.pickup_window_start, L)} 〜 ${fmtTime(b.pickup_window_end)}`), el("br"),
        `${placeText(ctx, b.origin, L)} → ${placeText(ctx, b.destination, L)}`,
        forOther ? [el("br"), t("for_name", { name: b.passenger_name })] : null),
      b.origin.stop_id && b.destination.stop_id
        ? el("button", { type: "button", class: "again", dataset: { again: b.id }, onclick: () => bookAgain(ctx, b) }, t("book_again"))
        : null);
  };

  Promise.all([ctx.api.bookings(), ctx.stores ? ctx.stores : ctx.api.stores().catch(() => [])]).then(([all, stores]) => {
    ctx.stores = stores;
    if (!all.length) { box.replaceChildren(el("p", {}, t("list_empty"))); return; }
    const by = (a, b) => a.pickup_window_start.localeCompare(b.pickup_window_start);
    const up = all.filter((b) => ACTIVE.has(b.status)).sort(by);
    const past = all.filter((b) => !ACTIVE.has(b.status)).sort(by).reverse();
    box.replaceChildren(...[
      up.length ? el("h3", {}, t("upcoming")) : null,
      up.length ? el("ul", { class: "booking-list", id: "upcoming" }, up.map(item)) : null,
      past.length ? el("h3", {}, t("past")) : null,
      past.length ? el("ul", { class: "booking-list", id: "past" }, past.map(item)) : null].filter(Boolean));
  }).catch((e) => { box.replaceChildren(); alert.textContent = e.text ? e.text(L) : String(e); });
}
