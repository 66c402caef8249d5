// Door-to-door details on the next stop (address, the rider's note, a call button: only what the
// job needs), a small map of the next leg (no tiles: it works offline), and the date in the top bar.
import { translator } from "./i18n.js";

const TEXTS = {
  door: { ja: "ドアツードア", en: "Door-to-door" },
  address: { ja: "住所", en: "Address" },
  note: { ja: "メモ", en: "Note" },
  call: { ja: "電話する", en: "Call" },
  number: { ja: "予約番号", en: "Booking" },
  leg: { ja: "次の区間の地図", en: "Map of the next leg" },
  here: { ja: "現在地", en: "You" },
  from_here: { ja: "現在地から{to}まで 約{km} km(北が上)", en: "From here to {to}, about {km} km (north up)" },
  no_position: { ja: "{to}とその先の経路(現在地は未取得・北が上)", en: "{to} and the route after it (position not known yet; north up)" },
  then: { ja: "その先", en: "then" },
};
const NS = "http://www.w3.org/2000/svg";
const WD_JA = ["日", "月", "火", "水", "木", "金", "土"];

const tr = translator(TEXTS);
function tx(lang, key, vars = {}) { return tr(key, vars, lang); }

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function svgEl(tag, attrs = {}, text = "") {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text) e.textContent = text;
  return e;
}

/** The date in Asia/Tokyo: 「12月1日(火)」 / "Tue 1 Dec". */
export function dateText(now, lang) {
  const p = {};
  const f = new Intl.DateTimeFormat("en-GB", { timeZone: "Asia/Tokyo", year: "numeric", month: "numeric", day: "numeric", weekday: "short" });
  for (const x of f.formatToParts(now)) p[x.type] = x.value;
  const wd = new Date(Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day))).getUTCDay();
  if (lang === "en") return `${p.weekday} ${p.day} ${new Intl.DateTimeFormat("en-GB", { month: "short", timeZone: "Asia/Tokyo" }).format(now)}`;
  return `${Number(p.month)}月${Number(p.day)}日(${WD_JA[wd]})`;
}

/** The rider as the driver calls them: the name as given, else the booking number (a kiosk walk-up). */
export function riderName(v, lang) {
  if (v.passenger_name) return v.passenger_name;
  return v.booking_number ? `${tx(lang, "number")} ${v.booking_number}` : "—";
}

/** Keep `box` showing today's date (the server's clock, the tablet's language). */
export function startDate(box, now, lang) {
  const tick = () => { box.textContent = dateText(now(), lang()); };
  tick();
  setInterval(tick, 30_000);
  return tick;
}

function km(a, b) {
  const r = Math.PI / 180;
  const x = (b.lon - a.lon) * r * Math.cos(((a.lat + b.lat) / 2) * r);
  const y = (b.lat - a.lat) * r;
  return Math.hypot(x, y) * 6371;
}

/** Door-to-door visits of the next stop: address, note and a call button (pickups only carry a phone). */
function doorPanel(group, lang) {
  const door = group.visits.filter((v) => !v.stop_id && (v.address || v.note || v.contact_phone));
  if (!door.length) return null;
  return el("div", { class: "doorstep", id: "doorstep" },
    el("p", { class: "doorstep-title" }, tx(lang, "door")),
    door.map((v) => el("div", { class: "doorstep-visit", "data-booking": v.booking_id },
      v.address ? el("p", { class: "doorstep-address" }, `${tx(lang, "address")}: `, el("strong", {}, v.address)) : null,
      v.note ? el("p", { class: "doorstep-note" }, `${tx(lang, "note")}: ${v.note}`) : null,
      v.contact_phone ? el("a", { class: "btn btn-call", href: `tel:${v.contact_phone.replace(/[^0-9+]/g, "")}`, "data-action": "call" },
        `${tx(lang, "call")} ${v.contact_phone}${v.passenger_name ? `(${v.passenger_name})` : ""}`) : null)));
}

/** A north-up sketch of the next leg: where the tablet is (if known), the next stop, the stops after it. */
function legMap(position, groups, lang, nameOf) {
  const next = groups[0];
  const pts = [];
  if (position) pts.push({ ...position, kind: "here", label: tx(lang, "here") });
  for (const [i, g] of groups.slice(0, 3).entries()) pts.push({ lat: g.lat, lon: g.lon, kind: i === 0 ? "next" : "later", label: nameOf(g) });
  const W = 420;
  const H = 260;
  const pad = 36;
  const lats = pts.map((p) => p.lat);
  const lons = pts.map((p) => p.lon);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const kx = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const k = Math.min((W - 2 * pad) / ((maxLon - minLon) * kx || 1e-9), (H - 2 * pad) / ((maxLat - minLat) || 1e-9));
  const x = (lon) => (maxLon === minLon ? W / 2 : pad + (lon - minLon) * kx * k);
  const y = (lat) => (maxLat === minLat ? H / 2 : H - pad - (lat - minLat) * k);
  const desc = position
    ? tx(lang, "from_here", { to: nameOf(next), km: km(position, next).toFixed(1) })
    : tx(lang, "no_position", { to: nameOf(next) });
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "leg-map", id: "leg-map", role: "img", "aria-label": `${tx(lang, "leg")}: ${desc}` });
  svg.append(svgEl("rect", { x: 0, y: 0, width: W, height: H, fill: "#ffffff", stroke: "#6b7280" }));
  svg.append(svgEl("text", { x: W - 24, y: 22, "font-size": 16, "font-weight": 700, fill: "#111827" }, "N"));
  svg.append(svgEl("path", { d: `M${W - 19} 28 l-6 14 h12 z`, fill: "#111827" }));
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1];
    const b = pts[i];
    const first = i === 1;
    svg.append(svgEl("line", { x1: x(a.lon), y1: y(a.lat), x2: x(b.lon), y2: y(b.lat), stroke: first ? "#0b4f8a" : "#6b7280",
      "stroke-width": first ? 6 : 3, "stroke-dasharray": first ? "" : "6 6", "stroke-linecap": "round" }));
  }
  for (const p of pts) {
    const cx = x(p.lon);
    const cy = y(p.lat);
    if (p.kind === "here") svg.append(svgEl("rect", { x: cx - 9, y: cy - 9, width: 18, height: 18, rx: 4, fill: "#ff9f1a", stroke: "#111827", "stroke-width": 2 }));
    else svg.append(svgEl("circle", { cx, cy, r: p.kind === "next" ? 11 : 7, fill: p.kind === "next" ? "#a3141a" : "#ffffff", stroke: "#111827", "stroke-width": 3 }));
    svg.append(svgEl("text", { x: Math.min(cx + 14, W - 150), y: cy - 12, "font-size": p.kind === "next" ? 18 : 15,
      "font-weight": p.kind === "next" ? 700 : 400, fill: "#111827", "paint-order": "stroke", stroke: "#ffffff", "stroke-width": 4 }, p.label));
  }
  return el("figure", { class: "leg" }, svg, el("figcaption", { class: "leg-caption" }, desc));
}

/** Add the door-to-door panel and the leg map to the next-stop card (called after each render). */
export function decorateNext(box, groups, { lang, position, nameOf }) {
  if (!box || !groups.length) return;
  const panel = doorPanel(groups[0], lang);
  const riders = box.querySelector("ol.riders");
  if (panel) box.insertBefore(panel, riders);
  box.append(legMap(position, groups, lang, nameOf));
}
