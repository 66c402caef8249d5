// Rider app shell: sign-in, language, stops, and a tiny hash router over the screen modules.
import { Api, getToken } from "../api.js";
import { lang, setLang, translator, applyTexts } from "../i18n.js";
import { TEXTS } from "./texts.js";
import * as login from "./login.js";
import * as request from "./request.js";
import * as picker from "./picker.js";
import * as offer from "./offer.js";
import * as booking from "./booking.js";
import * as list from "./list.js";
import * as family from "./family.js";
import * as delivery from "./delivery.js";
import * as parcel from "./parcel.js";
import * as home from "./home.js";

const t = translator(TEXTS);
const root = document.getElementById("main");
const ctx = {
  api: new Api("rider"),
  t,
  lang,
  stops: [],
  stores: null, // GET /api/v1/stores (groceries)
  delivery: null, // the delivery being asked for (delivery.js)
  stopById: new Map(),
  me: null, // GET /api/v1/me
  profile: null, // GET /api/v1/rider/profile (near_minutes)
  config: null, // GET /api/v1/rider/config (map tiles)
  // The request being built survives moving between screens.
  form: { origin: null, destination: null, mode: "now", day: null, time: "", party: 1, wheelchair: false, forAccount: "" },
  offer: null,
  go(hash) { if (location.hash === hash) route(); else location.hash = hash; },
  rerender() { route(); },
  signedOut() { ctx.me = null; ctx.profile = null; },
};

let cleanup = null;

async function loadBasics() {
  if (!ctx.stops.length) {
    ctx.stops = await ctx.api.stops();
    ctx.stopById = new Map(ctx.stops.map((s) => [s.id, s]));
  }
  if (!ctx.config) ctx.config = await ctx.api.riderConfig().catch(() => ({}));
  if (!ctx.me) ctx.me = await ctx.api.me();
  if (!ctx.profile) ctx.profile = await ctx.api.profile().catch(() => null);
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  applyTexts(document, t);
  document.getElementById("lang-toggle").textContent = lang() === "en" ? "日本語" : "English";
  document.getElementById("lang-toggle").lang = lang() === "en" ? "ja" : "en";
  const hash = location.hash || "#/new";
  const [, name = "new", arg] = hash.split("/");
  const offerKind = name === "offer" && ctx.offer ? ctx.offer.offer.kind : "";
  const tab = { bookings: "tab-list", booking: "tab-list", parcel: "tab-list", family: "tab-family", home: "tab-family", delivery: "tab-delivery" }[name]
    || (offerKind === "delivery" || arg === "delivery" ? "tab-delivery" : "tab-new");
  for (const a of document.querySelectorAll("nav.tabs a")) {
    if (a.id === tab) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  root.replaceChildren();
  if (!getToken("rider")) {
    ctx.signedOut();
    cleanup = login.render(ctx, root) || null;
    return;
  }
  try {
    await loadBasics();
  } catch (e) {
    root.textContent = e.text ? e.text(lang()) : String(e);
    return;
  }
  const screens = { new: request, pick: picker, offer, booking, bookings: list, family, delivery, parcel, home };
  const screen = screens[name];
  if (!screen) { ctx.go("#/new"); return; }
  cleanup = screen.render(ctx, root, arg) || null;
}

document.getElementById("lang-toggle").addEventListener("click", () => {
  setLang(lang() === "en" ? "ja" : "en");
  route();
});
window.addEventListener("hashchange", route);
route();

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch((e) => console.warn("service worker:", e));
}
