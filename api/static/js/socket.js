// Live status of one booking: the websocket /ws/bookings/{id} when the server offers it,
// polling GET /api/v1/bookings/{id} otherwise. Unknown message types fail loudly.
const POLL_MS = 15000;

export class UnknownMessage extends Error {}

// Known message types and what they carry; anything else is a protocol error.
const HANDLERS = {
  snapshot: (m, on) => on.booking(m.booking || m.data || m),
  booking: (m, on) => on.booking(m.booking || m.data || m),
  booking_updated: (m, on) => on.booking(m.booking || m.data || m),
  status: (m, on) => on.patch({ status: m.status }),
  eta: (m, on) => on.patch({ eta: m.eta || m.pickup_eta || m.planned_pickup }),
  heartbeat: () => {},
  ping: () => {},
  pong: () => {},
};

export function handleMessage(msg, on) {
  const h = HANDLERS[msg && msg.type];
  if (!h) throw new UnknownMessage(`unknown message type: ${JSON.stringify(msg && msg.type)}`);
  h(msg, on);
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
    const url = `${proto}//${location.host}/ws/bookings/${encodeURIComponent(id)}?token=${encodeURIComponent(api.token)}`;
    ws = new WebSocket(url);
    ws.onmessage = (ev) => {
      try {
        handleMessage(JSON.parse(ev.data), on);
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
