// The tablet's language helper, in the same shape as the other pages' (api/static/js/i18n.js):
// the tablet page is its own app (driver_app imports nothing of api), so it keeps this small copy.
// Japanese first, English on request; the choice is kept on the device under the same key.
const KEY = "okuma.lang";
const OLD_KEY = "okuma.driver.lang"; // the tablet's earlier key, still read once

export function lang() {
  const l = localStorage.getItem(KEY) || localStorage.getItem(OLD_KEY);
  return l === "en" ? "en" : "ja";
}

export function setLang(l) {
  localStorage.setItem(KEY, l === "en" ? "en" : "ja");
  localStorage.removeItem(OLD_KEY);
  document.documentElement.lang = lang();
}

// A translator for one dictionary {key: {ja, en}}; unknown keys fail loudly.
export function translator(dict) {
  return function t(key, vars = {}, l = lang()) {
    const entry = dict[key];
    if (!entry) throw new Error(`missing text: ${key}`);
    let s = entry[l];
    for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
    return s;
  };
}

// Fill every [data-t] element (text) and [data-t-label] (aria-label) under root.
export function applyTexts(root, t) {
  document.documentElement.lang = lang();
  for (const el of root.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of root.querySelectorAll("[data-t-label]")) el.setAttribute("aria-label", t(el.dataset.tLabel));
}
