// Live status of one booking: the websocket /ws/bookings/{id} when the server offers it,
// polling GET /api/v1/bookings/{id} otherwise. Unknown message types fail loudly.
const POLL_MS = 15000;

export class UnknownMessage extends Error {}

// The server's rider messages (driver_app/protocol.py RiderServerMessage); anything else is a protocol error.
const HANDLERS = {
  booking: (m, on) => on.patch({
    status: m.status,
    vehicle_id: m.vehicle_id,
    vehicle_name_ja: m.vehicle_name_ja,
    vehicle_name_en: m.vehicle_name_en,
    pickup_window_start: m.pickup_window_start,
    pickup_window_end: m.pickup_window_end,
    latest_dropoff: m.latest_dropoff,
    planned_pickup: m.planned_pickup,
    eta: m.eta_pickup || m.planned_pickup,
    eta_dropoff: m.eta_dropoff || m.planned_dropoff,
    minutes_away: m.minutes_away,
    vehicle_lat: m.vehicle_lat,
    vehicle_lon: m.vehicle_lon,
    at_risk: m.at_risk,
    live_message_ja: m.message_ja,
    live_message_en: m.message_en,
    // a delivery: its status (ordered → ready → picked_up → delivered / returned) and the recipient's code
    ...(m.delivery_status ? { delivery_status: m.delivery_status, handover_code: m.handover_code } : {}),
  }),
  promise_at_risk: (m, on) => on.patch({ at_risk: true, eta: m.expected, live_message_ja: m.message_ja, live_message_en: m.message_en }),
  // the delay is over (or the ride ended): the "delay expected" text goes; a fresh booking message follows
  promise_cleared: (m, on) => on.patch({ at_risk: false, live_message_ja: "", live_message_en: "" }),
  promise_broken: (m, on) => on.patch({ at_risk: true, eta: m.expected, live_message_ja: m.message_ja, live_message_en: m.message_en }),
  error: (m) => { console.error("live channel error:", m.code, m.message_en); },
  ping: (m, on, ws) => { if (ws) ws.send(JSON.stringify({ type: "pong", t: m.t })); },
  pong: () => {},
};

export function handleMessage(msg, on, ws) {
  const h = HANDLERS[msg && msg.type];
  if (!h) throw new UnknownMessage(`unknown message type: ${JSON.stringify(msg && msg.type)}`);
  h(msg, on, ws);
}

// Watch a booking. on = {booking(b), patch(p), error(e)}. Returns stop().
export function watchBooking(api, id, on) {
  let stopped = false;
  let ws = null;
  let timer = null;

  const poll = async () => {
    if (stopped) return;
    try { on.booking(await api.booking(id)); } catch (e) { on.error && on.error(e); }
    timer = setTimeout(poll, POLL_MS);
  };

  const startPolling = () => { if (!timer && !stopped) timer = setTimeout(poll, POLL_MS); };

  try {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/ws/bookings/${encodeURIComponent(id)}`);
    // The token goes in the first message, never in the URL (URLs end up in access logs).
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", token: api.token, client: "rider-page" }));
    ws.onmessage = (ev) => {
      try {
        handleMessage(JSON.parse(ev.data), on, ws);
      } catch (e) {
        console.error("live channel:", e); // loud, then fall back to polling
        on.error && on.error(e);
        ws.close();
      }
    };
    ws.onclose = () => { ws = null; startPolling(); };
    ws.onerror = () => {};
  } catch {
    startPolling();
  }
  poll();

  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    if (ws) { ws.onclose = null; ws.close(); }
  };
}
