// Service worker: keep the app shell so the rider app opens without a network.
// API calls always go to the network (bookings must be live); the shell is cache-first
// with a background refresh.
const CACHE = "okuma-rider-v4";
const SHELL = [
  "/",
  "/static/css/base.css",
  "/static/css/rider.css",
  "/static/js/api.js",
  "/static/js/i18n.js",
  "/static/js/socket.js",
  "/static/js/rider/main.js",
  "/static/js/rider/texts.js",
  "/static/js/rider/login.js",
  "/static/js/rider/request.js",
  "/static/js/rider/picker.js",
  "/static/js/rider/offer.js",
  "/static/js/rider/booking.js",
  "/static/js/rider/list.js",
  "/static/js/rider/map.js",
  "/static/js/rider/family.js",
  "/static/js/rider/delivery.js",
  "/static/js/rider/parcel.js",
  "/static/vendor/leaflet/leaflet.js",
  "/static/vendor/leaflet/leaflet.css",
  "/static/manifest.json",
  "/static/icons/icon.svg",
];

self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (e) => {
  e.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== location.origin) return;
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/ws/")) return;
  if (!SHELL.includes(url.pathname)) return;
  e.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const hit = await cache.match(e.request);
      const fresh = fetch(e.request).then((res) => {
        if (res.ok) cache.put(e.request, res.clone());
        return res;
      }).catch(() => hit);
      return hit || fresh;
    }),
  );
});
