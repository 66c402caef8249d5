// HTTP calls of the tablet: who am I (the driver's vehicle) and the stop names.
// Errors carry the server's message_ja / message_en.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message_ja || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function getJson(path, token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(path, { headers });
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

/** The account behind the token: {account_id, role, name, vehicle_id, ...}. */
export function me(token) {
  return getJson("/api/v1/me", token);
}

/** Every stop with name_ja, name_kana, name_en, lat, lon. */
export function stops() {
  return getJson("/api/v1/stops");
}
