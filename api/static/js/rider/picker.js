// Screen: choose a stop by name (kanji, kana or English) or by area (大川原 / 大野駅周辺).
import { fold, ZONES, stopName } from "../api.js";
import { lang, el } from "../i18n.js";
import { homePlace } from "./home.js";

export const HOME = "home"; // the ride form's "from/to my home" (door-to-door riders, home.js)

let zoneChoice = "all";

export function render(ctx, root, which) {
  const { t, form } = ctx;
  const L = lang();
  if (which !== "origin" && which !== "destination" && which !== "delivery") { ctx.go("#/new"); return; }
  // "delivery": where groceries are brought (delivery.js); the others fill the ride form
  const target = which === "delivery" ? ctx.delivery || {} : form;
  const key = which === "delivery" ? "stop" : which;
  const back = which === "delivery" ? "#/delivery" : "#/new";
  const input = el("input", { id: "stop-search", type: "search", name: "q", autocomplete: "off", lang: "ja" });
  const list = el("ul", { class: "stop-list", id: "stop-list", "aria-live": "polite" });
  const zones = ["all", ...Object.keys(ZONES)];
  const zoneBar = el("div", { class: "seg", role: "group", "aria-label": t("area") });

  const draw = () => {
    zoneBar.replaceChildren(...zones.map((z) => el("button", {
      type: "button", "aria-pressed": String(zoneChoice === z), dataset: { zone: z },
      onclick: () => { zoneChoice = z; draw(); },
    }, z === "all" ? t("all") : ZONES[z][L])));
    const q = fold(input.value);
    const found = ctx.stops.filter((s) =>
      (zoneChoice === "all" || s.zone === zoneChoice) &&
      (!q || fold(s.name_ja).includes(q) || fold(s.name_kana).includes(q) || fold(s.name_en).includes(q)));
    if (!found.length) { list.replaceChildren(el("li", { class: "muted" }, t("no_match"))); return; }
    list.replaceChildren(...found.map((s) => el("li", {},
      el("button", {
        type: "button", dataset: { stop: s.id }, "aria-current": target[key] === s.id ? "true" : null,
        onclick: () => { target[key] = s.id; ctx.go(back); },
      },
      el("span", {}, stopName(s, L)),
      el("span", { class: "kana" }, `${L === "en" ? s.name_ja : s.name_kana} · ${ZONES[s.zone] ? ZONES[s.zone][L] : s.zone}${s.wheelchair ? " · " + t("wheelchair_ok") : ""}`)))));
  };
  input.addEventListener("input", draw);

  // A door-to-door rider rides from or to their saved home (or saves one first).
  let homeChoice = null;
  if (which !== "delivery" && ctx.profile && ctx.profile.door_to_door) {
    const h = homePlace(ctx);
    homeChoice = h
      ? el("button", { type: "button", class: "place-btn", id: "pick-home", "aria-current": target[key] === HOME ? "true" : null,
        onclick: () => { target[key] = HOME; ctx.go(back); } },
      el("span", {}, t("d_home")), el("span", { class: "value" }, h.address))
      : el("button", { type: "button", id: "pick-home-set", onclick: () => { ctx.homeBack = `#/pick/${which}`; ctx.go("#/home"); } }, t("h_set"));
  }
  root.append(el("section", { class: "card stack" },
    el("h2", { id: "picker-title" }, t({ origin: "pick_origin", destination: "pick_destination", delivery: "pick_delivery" }[which])),
    el("button", { type: "button", id: "picker-back", onclick: () => ctx.go(back) }, "← ", t("back")),
    homeChoice,
    el("label", { for: "stop-search" }, t("kana_search")),
    input,
    el("p", { class: "muted", id: "area-label" }, t("area")),
    zoneBar,
    list));
  draw();
  input.focus();
}
