// Screen: my home (riders registered for door-to-door): the address as written and a pin on the map,
// set once and kept on my profile (PATCH /api/v1/rider/profile {home}); the ride and grocery forms
// then offer "home" without asking again. The pin: drag it or tap the map (Leaflet, vendored; without
// tiles the map is the schematic of stops), or type the latitude and longitude, or start from this
// phone's location. The server refuses a place outside the service area (both languages).
import { el, lang } from "../i18n.js";

const FIX = 5; // decimals of a typed or shown position (about 1 m)

export function render(ctx, root) {
  const { t } = ctx;
  const L = lang();
  const back = ctx.homeBack || "#/family";
  const title = el("h2", { id: "home-title", tabindex: "-1" }, t("h_title"));
  const backBtn = el("button", { type: "button", id: "home-back", onclick: () => { ctx.homeBack = null; ctx.go(back); } }, "← ", t("back"));
  if (!ctx.profile || !ctx.profile.door_to_door) {
    root.append(el("section", { class: "card stack", "aria-labelledby": "home-title" }, title,
      el("p", { id: "home-not-d2d" }, t("h_not_d2d")), backBtn));
    title.focus();
    return null;
  }
  const saved = ctx.profile.home;
  const draft = { address: saved ? saved.address : "", lat: saved ? saved.lat : null, lon: saved ? saved.lon : null };
  const alert = el("div", { class: "alert", role: "alert", id: "home-error" });
  const status = el("p", { role: "status", id: "home-status", tabindex: "-1" });
  const address = el("input", { id: "home-addr", name: "home-addr", type: "text", autocomplete: "street-address",
    maxlength: "200", value: draft.address, "aria-describedby": "home-addr-help",
    oninput: (e) => { draft.address = e.target.value; } });
  const num = (v) => (v == null ? "" : v.toFixed(FIX));
  const latIn = el("input", { id: "home-lat", name: "home-lat", inputmode: "decimal", autocomplete: "off", value: num(draft.lat), "aria-describedby": "home-pin-help" });
  const lonIn = el("input", { id: "home-lon", name: "home-lon", inputmode: "decimal", autocomplete: "off", value: num(draft.lon), "aria-describedby": "home-pin-help" });
  const where = el("p", { id: "home-pin", "aria-live": "polite" });
  const box = el("div", { id: "home-map", class: "map", role: "img", "aria-label": t("h_map_desc") });
  const attribution = el("p", { class: "muted small", id: "home-map-attribution" });
  const Lf = globalThis.L;
  let map = null, marker = null;

  const say = () => {
    where.textContent = draft.lat == null ? t("h_pin_unset") : t("h_pin_at", { lat: draft.lat.toFixed(4), lon: draft.lon.toFixed(4) });
  };
  // The pin moved (map, typed or the phone's location): every view of it follows.
  const place = (lat, lon, { fields = true, pan = false } = {}) => {
    draft.lat = lat;
    draft.lon = lon;
    if (fields) { latIn.value = num(lat); lonIn.value = num(lon); }
    box.dataset.lat = String(lat);
    box.dataset.lon = String(lon);
    say();
    if (!map) return;
    if (!marker) {
      marker = Lf.marker([lat, lon], { draggable: true, keyboard: false, autoPan: true,
        icon: Lf.divIcon({ className: "pin home", iconSize: [26, 26] }) }).addTo(map);
      marker.on("dragend", () => { const p = marker.getLatLng(); place(p.lat, p.lng); });
    } else marker.setLatLng([lat, lon]);
    if (pan) map.panTo([lat, lon]);
  };
  const typed = () => {
    const lat = Number(latIn.value), lon = Number(lonIn.value);
    if (latIn.value.trim() && lonIn.value.trim() && Number.isFinite(lat) && Number.isFinite(lon)) place(lat, lon, { fields: false, pan: true });
  };
  latIn.addEventListener("change", typed);
  lonIn.addEventListener("change", typed);

  const mount = () => {
    if (!Lf || map) return;
    map = Lf.map(box, { zoomControl: false, keyboard: false, attributionControl: false, zoomSnap: 0.25 });
    const cfg = ctx.config || {};
    if (cfg.tile_url) {
      Lf.tileLayer(cfg.tile_url, { maxZoom: 18 }).addTo(map);
      attribution.textContent = cfg.tile_attribution || "";
      box.classList.add("tiles");
    }
    for (const s of ctx.stops) {
      Lf.circleMarker([s.lat, s.lon], { radius: 3, color: "#6b6b6b", weight: 1, fillOpacity: 0.6, interactive: false }).addTo(map);
    }
    if (draft.lat != null) map.setView([draft.lat, draft.lon], 16);
    else map.fitBounds(Lf.latLngBounds(ctx.stops.map((s) => [s.lat, s.lon])).pad(0.1));
    map.on("click", (e) => place(e.latlng.lat, e.latlng.lng));
    if (draft.lat != null) place(draft.lat, draft.lon, { fields: false });
  };

  const here = el("button", { type: "button", id: "home-here", onclick: () => {
    if (!navigator.geolocation) { alert.textContent = t("d_no_location"); return; }
    navigator.geolocation.getCurrentPosition(
      (p) => place(p.coords.latitude, p.coords.longitude, { pan: true }),
      () => { alert.textContent = t("d_no_location"); }, { timeout: 10000 });
  } }, t("h_here"));

  const save = el("button", { type: "submit", class: "primary", id: "home-save" }, t("h_save"));
  const form = el("form", { class: "card stack", id: "home-form", novalidate: true, "aria-labelledby": "home-title" },
    title, el("p", {}, t("h_help")),
    el("label", { for: "home-addr" }, t("d_address")), address,
    el("p", { class: "muted small", id: "home-addr-help" }, t("h_addr_help")),
    el("figure", { class: "map-figure" }, box, where, attribution),
    el("p", { class: "muted", id: "home-pin-help" }, t("h_pin_help")),
    el("div", { class: "row" },
      el("div", { class: "grow" }, el("label", { for: "home-lat" }, t("h_lat")), latIn),
      el("div", { class: "grow" }, el("label", { for: "home-lon" }, t("h_lon")), lonIn)),
    here, alert, status,
    el("div", { class: "actions" }, save, backBtn));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    alert.textContent = "";
    status.textContent = "";
    typed();
    const bad = [];
    if (!draft.address.trim()) bad.push(t("h_need_address"));
    if (draft.lat == null || draft.lon == null) bad.push(t("h_need_pin"));
    if (bad.length) { alert.textContent = bad.join(" "); return; }
    save.disabled = true;
    try {
      ctx.profile = await ctx.api.updateProfile({ home: { address: draft.address.trim(), lat: draft.lat, lon: draft.lon } });
      ctx.homeChanged = true; // the grocery form takes the new home
      status.textContent = t("h_saved", { address: ctx.profile.home.address });
      status.focus();
    } catch (e) {
      alert.textContent = e.text ? e.text(L) : String(e);
    } finally {
      save.disabled = false;
    }
  });
  root.append(form);
  say();
  mount();
  if (map) setTimeout(() => map.invalidateSize(), 0);
  title.focus();
  return () => { if (map) { map.remove(); map = null; } };
}

// "home" as a place of a ride or delivery request: the saved home, or null when none is saved.
export function homePlace(ctx) {
  const h = ctx.profile && ctx.profile.door_to_door ? ctx.profile.home : null;
  return h ? { lat: h.lat, lon: h.lon, address: h.address } : null;
}
