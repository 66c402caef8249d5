// The tablet's websocket (protocol: docs/driver-protocol.md, models in driver_app/protocol.py).
// Every driver event goes to a persistent outbox in localStorage first, is sent when the link
// is up, and leaves the outbox only when the server acknowledges it. On every reconnect the
// tablet says which seq it saw last, takes the snapshot, then replays the outbox with the same
// client_event_ids, so the server applies each event once.

const SERVER_TYPES = new Set(["hello", "snapshot", "delta", "ack", "error", "ping", "pong", "eta",
  "promise_at_risk", "promise_cleared"]);
const CLIENT_NAME = "okuma-driver-tablet/1";

export class UnknownMessageType extends Error {
  constructor(type, raw) {
    super(`Unknown message type from server: ${JSON.stringify(type)}`);
    this.type = type;
    this.raw = raw;
  }
}

export function newEventId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return `tab-${crypto.randomUUID()}`;
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return `tab-${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}

export class DriverSocket {
  /**
   * @param {object} o
   * @param {string} o.token      the driver token
   * @param {string} o.vehicleId  the driver's vehicle
   * @param {(msg: object) => void} o.onMessage  snapshot, delta, eta, hello, ack, error
   * @param {(state: string, queued: number) => void} o.onStatus  "connecting" | "online" | "offline"
   * @param {(err: Error) => void} o.onFatal  unknown message types and other protocol breaks
   */
  constructor({ token, vehicleId, onMessage, onStatus, onFatal, url, now }) {
    this.now = now || (() => new Date());
    this.token = token;
    this.vehicleId = vehicleId;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.onFatal = onFatal;
    this.url = url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/driver`;
    this.outboxKey = `okuma.driver.outbox.${vehicleId}`;
    this.seqKey = `okuma.driver.last_seq.${vehicleId}`;
    this.ws = null;
    this.state = "connecting";
    this.synced = false; // true once the snapshot of this connection arrived
    this.heartbeatS = 15;
    this.backoffMs = 500;
    this.lastHeard = 0;
    this.timer = null;
    this.reconnectTimer = null;
    this.stopped = false;
    window.addEventListener("offline", () => this._linkDown("browser offline"));
    window.addEventListener("online", () => this._reconnectSoon(0));
  }

  get lastSeq() {
    const v = localStorage.getItem(this.seqKey);
    return v === null ? null : Number(v);
  }

  set lastSeq(v) {
    localStorage.setItem(this.seqKey, String(v));
  }

  get outbox() {
    try {
      return JSON.parse(localStorage.getItem(this.outboxKey) || "[]");
    } catch {
      return [];
    }
  }

  set outbox(list) {
    localStorage.setItem(this.outboxKey, JSON.stringify(list));
    this._status(this.state);
  }

  start() {
    this.stopped = false;
    this._connect();
    this.timer = setInterval(() => this._tick(), 1000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.reconnectTimer);
    if (this.ws) this.ws.close();
  }

  /** Queue a driver event (arrived, boarded, ...); returns its client_event_id. */
  send(event) {
    const e = { ...event, client_event_id: newEventId(), at: this.now().toISOString() };
    this.outbox = [...this.outbox, e];
    if (this.synced) this._raw(e);
    return e.client_event_id;
  }

  /** A position is only worth sending live: it is never queued. */
  sendPosition(lat, lon, extra = {}) {
    if (!this.synced) return;
    this._raw({ type: "position", lat, lon, ...extra, client_event_id: newEventId(), at: this.now().toISOString() });
  }

  resync() {
    if (this.synced) this._raw({ type: "resync" });
  }

  _status(state) {
    this.state = state;
    this.onStatus(state, this.outbox.length);
  }

  _connect() {
    if (this.stopped) return;
    if (typeof navigator !== "undefined" && navigator.onLine === false) {
      this._status("offline");
      return; // the "online" event brings us back
    }
    this.synced = false;
    if (this.state !== "offline") this._status("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._linkDown(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = Date.now();
      const hello = { type: "hello", token: this.token, vehicle_id: this.vehicleId, client: CLIENT_NAME };
      if (this.lastSeq !== null) hello.last_seq = this.lastSeq;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (err) {
        this.onFatal(new Error(`Server sent invalid JSON: ${String(ev.data).slice(0, 200)}`));
        return;
      }
      this._handle(msg);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this._linkDown(`closed ${ev.code}`);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  _handle(msg) {
    const type = msg && msg.type;
    if (!SERVER_TYPES.has(type)) {
      const err = new UnknownMessageType(type, msg);
      this.onFatal(err);
      throw err; // fail loudly: the console shows it, the page shows the banner
    }
    switch (type) {
      case "hello":
        if (msg.heartbeat_s) this.heartbeatS = msg.heartbeat_s;
        this.onMessage(msg);
        return;
      case "snapshot":
        this.lastSeq = msg.seq;
        this.synced = true;
        this.backoffMs = 500;
        this._status("online");
        this.onMessage(msg);
        for (const e of this.outbox) this._raw(e); // replay, same client_event_ids
        return;
      case "delta":
        if (this.lastSeq !== null && msg.seq <= this.lastSeq) return; // already seen
        this.lastSeq = msg.seq;
        this.onMessage(msg);
        return;
      case "ack":
        this._settle(msg.client_event_id);
        this.onMessage(msg);
        return;
      case "error":
        // InternalError: the server could not record it now; it stays queued for the next replay
        if (msg.client_event_id && msg.code !== "InternalError") this._settle(msg.client_event_id);
        this.onMessage(msg);
        if (msg.code === "Unauthorised" || msg.code === "Forbidden") this.stopped = true;
        return;
      case "ping":
        this._raw({ type: "pong", t: msg.t ?? null });
        return;
      case "pong":
        return;
      case "eta":
        this.onMessage(msg);
        return;
    }
  }

  _settle(id) {
    const list = this.outbox;
    const left = list.filter((e) => e.client_event_id !== id);
    if (left.length !== list.length) this.outbox = left;
  }

  _raw(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  _tick() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const quiet = Date.now() - this.lastHeard;
    if (quiet > 3 * this.heartbeatS * 1000) {
      this._linkDown("heartbeat lost");
      return;
    }
    if (quiet > this.heartbeatS * 1000 / 2 && Date.now() - (this.lastPing || 0) > this.heartbeatS * 1000 / 2) {
      this.lastPing = Date.now();
      this._raw({ type: "ping", t: Date.now() / 1000 });
    }
  }

  _linkDown(why) {
    this.synced = false;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try { ws.close(); } catch { /* already closed */ }
    }
    this._status("offline");
    console.info("driver socket down:", why);
    this._reconnectSoon(this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
  }

  _reconnectSoon(ms) {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (!this.ws) this._connect();
    }, ms);
  }
}
