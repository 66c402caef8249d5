// The live map of one booking: every stop as a small dot (the schematic), the pickup and drop-off
// marked, the minibus moving. Leaflet is vendored (/static/vendor/leaflet); tiles are drawn only
// when the server's settings give a tile URL, so without tiles (or offline) the schematic remains.
// The map is a picture (role=img) with a text beside it that says the same in words.
import { el } from "../i18n.js";
import { stopName } from "../api.js";

function nearestStop(stops, lat, lon) {
  let best = null, bestD = Infinity;
  for (const s of stops) {
    const d = (s.lat - lat) ** 2 + ((s.lon - lon) * Math.cos((lat * Math.PI) / 180)) ** 2;
    if (d < bestD) { bestD = d; best = s; }
  }
  return best;
}

export function createMap(ctx, { origin, destination }) {
  const { t } = ctx;
  const caption = el("p", { id: "map-text", "aria-live": "polite" }, t("map_no_bus"));
  const box = el("div", { id: "map", class: "map", role: "img", "aria-label": t("map_desc") });
  const attribution = el("p", { class: "muted small", id: "map-attribution" });
  const figure = el("figure", { class: "map-figure" }, el("h3", {}, t("map_title")), box, caption,
    el("p", { class: "muted small" }, t("map_legend")), attribution);
  const L = globalThis.L;
  let map = null, bus = null;

  const mount = () => {
    if (!L || map) return;
    map = L.map(box, { zoomControl: false, keyboard: false, attributionControl: false, zoomSnap: 0.25 });
    const cfg = ctx.config || {};
    if (cfg.tile_url) {
      L.tileLayer(cfg.tile_url, { maxZoom: 18 }).addTo(map);
      attribution.textContent = cfg.tile_attribution || "";
      box.classList.add("tiles");
    }
    for (const s of ctx.stops) {
      L.circleMarker([s.lat, s.lon], { radius: 3, color: "#6b6b6b", weight: 1, fillOpacity: 0.6, interactive: false }).addTo(map);
    }
    const pin = (s, cls, label) => L.marker([s.lat, s.lon], {
      interactive: false, keyboard: false,
      icon: L.divIcon({ className: `pin ${cls}`, iconSize: [22, 22] }),
    }).addTo(map).bindTooltip(label, { permanent: true, direction: "top", offset: [0, -10], className: "pin-label" });
    if (origin) pin(origin, "origin", `● ${stopName(origin, ctx.lang())}`);
    if (destination) pin(destination, "destination", `■ ${stopName(destination, ctx.lang())}`);
    fit();
  };

  const fit = (busAt) => {
    if (!map) return;
    const pts = [origin, destination].filter(Boolean).map((s) => [s.lat, s.lon]);
    if (busAt) pts.push(busAt);
    if (pts.length) map.fitBounds(L.latLngBounds(pts).pad(0.25), { maxZoom: 16 });
  };

  // b: the booking as the page knows it (vehicle_lat/lon, minutes_away from the live channel)
  const update = (b) => {
    mount();
    if (b.vehicle_lat == null || b.vehicle_lon == null) return;
    const at = [b.vehicle_lat, b.vehicle_lon];
    if (map) {
      if (!bus) {
        bus = L.marker(at, { interactive: false, keyboard: false,
          icon: L.divIcon({ className: "bus-marker", html: "▲", iconSize: [28, 28] }) }).addTo(map);
        fit(at);
      } else {
        bus.setLatLng(at);
        if (!map.getBounds().contains(at)) fit(at);
      }
    }
    box.dataset.busLat = String(b.vehicle_lat);
    box.dataset.busLon = String(b.vehicle_lon);
    const near = nearestStop(ctx.stops, b.vehicle_lat, b.vehicle_lon);
    caption.textContent = t("map_bus_at", { where: stopName(near, ctx.lang()) });
  };

  return {
    element: figure,
    attach() { mount(); if (map) setTimeout(() => map.invalidateSize(), 0); },
    update,
    destroy() { if (map) { map.remove(); map = null; } },
  };
}
