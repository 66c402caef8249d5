// The one HTTP client of the pages: token, JSON, errors (ApiError carries the server body).
export const SERVICE_START = "07:00";
export const SERVICE_END = "20:00";
const TZ = "Asia/Tokyo";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message_en || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
  get code() { return this.body.error || "HTTPError"; }
  text(lang) {
    const b = this.body;
    if (lang === "en") return b.message_en || this.message;
    return b.message_ja || "通信に失敗しました。もう一度お試しください。";
  }
}

export function tokenKey(role) { return `okuma.token.${role}`; }
export function getToken(role) { return localStorage.getItem(tokenKey(role)) || ""; }
export function setToken(role, token) { localStorage.setItem(tokenKey(role), token.trim()); }
export function clearToken(role) { localStorage.removeItem(tokenKey(role)); }

export function newKey() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export class Api {
  constructor(role) { this.role = role; }
  get token() { return getToken(this.role); }

  // With `withHeaders`, the answer is {data, headers} (e.g. X-Total-Count of a page of bookings).
  async request(method, path, { body, headers = {}, withHeaders = false } = {}) {
    const h = { Accept: "application/json", ...headers };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) h["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, {
        error: "Network",
        message_ja: "通信できませんでした。電波の状態を確かめて、もう一度お試しください。",
        message_en: "Could not reach the server. Check the connection and try again.",
      });
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = { message_en: text }; }
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return withHeaders ? { data, headers: res.headers } : data;
  }

  me() { return this.request("GET", "/api/v1/me"); }
  stops() { return this.request("GET", "/api/v1/stops"); }
  offer(req) { return this.request("POST", "/api/v1/offers", { body: req }); }
  confirm(offerId, key) {
    return this.request("POST", "/api/v1/bookings", { body: { offer_id: offerId }, headers: { "Idempotency-Key": key } });
  }
  bookings() { return this.request("GET", "/api/v1/bookings"); }
  // Operators: one page of the search ({day, q, status, vehicle_id, limit, offset}) and the total.
  async findBookings(params) {
    const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
    const { data, headers } = await this.request("GET", `/api/v1/bookings?${q}`, { withHeaders: true });
    return { items: data, total: Number(headers.get("X-Total-Count") || data.length) };
  }
  booking(id) { return this.request("GET", `/api/v1/bookings/${encodeURIComponent(id)}`); }
  cancel(id, reason) {
    return this.request("POST", `/api/v1/bookings/${encodeURIComponent(id)}/cancel`, { body: { reason } });
  }
  vehicles() { return this.request("GET", "/api/v1/vehicles"); }
  // rider: sign-in by phone, profile, LINE, family, favourites, notices
  sendCode(phone) { return this.request("POST", "/api/v1/sign-in/code", { body: { phone } }); }
  verifyCode(phone, code, name) { return this.request("POST", "/api/v1/sign-in/verify", { body: { phone, code, name: name || null } }); }
  riderConfig() { return this.request("GET", "/api/v1/rider/config"); }
  profile() { return this.request("GET", "/api/v1/rider/profile"); }
  updateProfile(p) { return this.request("PATCH", "/api/v1/rider/profile", { body: p }); }
  lineLink() { return this.request("POST", "/api/v1/rider/line-link"); }
  notices() { return this.request("GET", "/api/v1/rider/notices"); }
  family() { return this.request("GET", "/api/v1/family"); }
  inviteFamily(phone, name) { return this.request("POST", "/api/v1/family/invitations", { body: { phone, name } }); }
  confirmFamily(id, code) {
    return this.request("POST", `/api/v1/family/invitations/${encodeURIComponent(id)}/confirm`, { body: { code } });
  }
  unlinkFamily(id) { return this.request("DELETE", `/api/v1/family/${encodeURIComponent(id)}`); }
  // groceries: the stores, one delivery (the recipient side gets its handover code)
  stores() { return this.request("GET", "/api/v1/stores"); }
  delivery(id) { return this.request("GET", `/api/v1/deliveries/${encodeURIComponent(id)}`); }
  // a delivery that cannot be handed over goes back to its store (stopId null) or to a stop the recipient chooses
  returnDelivery(id, stopId) {
    return this.request("POST", `/api/v1/deliveries/${encodeURIComponent(id)}/return`, { body: stopId ? { stop_id: stopId } : {} });
  }
  // the town desk: a resident by phone (with their family links), a consent given in person
  // the town desk: a door-to-door caller's saved home, by phone number (a POST: no phone in a URL)
  deskHome(phone) { return this.request("POST", "/api/v1/desk/rider-home", { body: { phone } }); }
  deskLookup(phone) { return this.request("POST", "/api/v1/family/desk-lookup", { body: { phone } }); }
  deskLink(guardianPhone, memberPhone, memberName) {
    return this.request("POST", "/api/v1/family/desk-links",
      { body: { guardian_phone: guardianPhone, member_phone: memberPhone, member_name: memberName } });
  }
  favourites() { return this.request("GET", "/api/v1/favourites"); }
  addFavourite(f) { return this.request("POST", "/api/v1/favourites", { body: f }); }
  deleteFavourite(id) { return this.request("DELETE", `/api/v1/favourites/${encodeURIComponent(id)}`); }
}

// ---- time, always shown in Asia/Tokyo whatever the device's zone

function parts(d) {
  const f = new Intl.DateTimeFormat("en-CA", {
    timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", weekday: "short", hourCycle: "h23",
  });
  const o = {};
  for (const p of f.formatToParts(d)) o[p.type] = p.value;
  return o;
}

export function tokyoDate(d = new Date()) {
  const p = parts(d);
  return `${p.year}-${p.month}-${p.day}`;
}

export function tokyoMinutes(d = new Date()) {
  const p = parts(d);
  return Number(p.hour) * 60 + Number(p.minute);
}

export function fmtTime(iso) {
  const p = parts(new Date(iso));
  return `${Number(p.hour)}:${p.minute}`;
}

const WD_JA = { Sun: "日", Mon: "月", Tue: "火", Wed: "水", Thu: "木", Fri: "金", Sat: "土" };

export function fmtDay(iso, lang) {
  const d = new Date(iso);
  const today = tokyoDate();
  const day = tokyoDate(d);
  const tomorrow = tokyoDate(new Date(Date.now() + 86400000));
  if (day === today) return lang === "en" ? "today" : "今日";
  if (day === tomorrow) return lang === "en" ? "tomorrow" : "明日";
  const p = parts(d);
  return lang === "en" ? `${p.weekday} ${Number(p.month)}/${Number(p.day)}` : `${Number(p.month)}月${Number(p.day)}日(${WD_JA[p.weekday]})`;
}

export function fmtDayTime(iso, lang) { return `${fmtDay(iso, lang)} ${fmtTime(iso)}`; }

// ISO with +09:00 for a Tokyo calendar day ("YYYY-MM-DD") and "HH:MM".
export function tokyoIso(day, hhmm) { return `${day}T${hhmm}:00+09:00`; }

export function addDays(day, n) {
  const d = new Date(`${day}T12:00:00+09:00`);
  return tokyoDate(new Date(d.getTime() + n * 86400000));
}

export function hm(minutes) {
  return `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
}

function toMin(hhmm) { const [h, m] = hhmm.split(":").map(Number); return h * 60 + m; }

// Is "now" inside service hours? If not, the next start as {day, time, iso}.
export function serviceNow(start = SERVICE_START, end = SERVICE_END) {
  const now = new Date();
  const m = tokyoMinutes(now);
  const today = tokyoDate(now);
  if (m >= toMin(start) && m < toMin(end)) return { open: true };
  const day = m < toMin(start) ? today : addDays(today, 1);
  return { open: false, day, time: start, iso: tokyoIso(day, start) };
}

// Plain words for the `cause` of NoRideAvailable.
export const CAUSES = {
  no_feasible_insertion: {
    ja: "その時刻は、どのミニバスも予約でいっぱいです。",
    en: "Every minibus is already fully booked at that time.",
  },
  no_vehicle_fits: {
    ja: "この人数・車いすの数を一度に乗せられる車両がありません。分けて予約するか、町の窓口にお電話ください。",
    en: "No vehicle can carry this many people or wheelchairs at once. Book in smaller groups or call the town desk.",
  },
  outside_service_hours: {
    ja: "その時刻は運行時間外です(7:00〜20:00)。",
    en: "That time is outside service hours (7:00 to 20:00).",
  },
  outside_service_area: {
    ja: "その場所は運行エリアの外です。",
    en: "That place is outside the service area.",
  },
  time_limit: {
    ja: "混み合っていて、時間内に答えを出せませんでした。少し待ってもう一度お試しください。",
    en: "The system is busy and could not answer in time. Please try again shortly.",
  },
};

export function causeText(cause, lang) {
  const c = CAUSES[cause];
  if (c) return c[lang === "en" ? "en" : "ja"];
  return lang === "en" ? "No ride is possible at that time." : "その時刻には乗れる車両がありません。";
}

export const STATUS = {
  confirmed: { ja: "予約済み", en: "Booked" },
  arriving: { ja: "まもなく到着", en: "Arriving" },
  on_board: { ja: "乗車中", en: "On board" },
  completed: { ja: "完了", en: "Completed" },
  cancelled: { ja: "取り消し済み", en: "Cancelled" },
  no_show: { ja: "乗車されませんでした", en: "No-show" },
};

export function statusText(s, lang) {
  const t = STATUS[s];
  return t ? t[lang === "en" ? "en" : "ja"] : s;
}

// Katakana → hiragana, lower case, no spaces: for kana search.
export function fold(s) {
  return (s || "")
    .replace(/[\u30a1-\u30f6]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x60))
    .replace(/[\s・()()]/g, "")
    .toLowerCase();
}

export const ZONES = {
  ogawara: { ja: "大川原", en: "Ogawara" },
  ono: { ja: "大野駅周辺", en: "Ono Station area" },
  other: { ja: "その他", en: "Other" },
};

export function stopName(stop, lang) {
  if (!stop) return "?";
  return lang === "en" ? stop.name_en : stop.name_ja;
}
