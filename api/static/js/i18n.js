// Language choice shared by every page: Japanese first, English on request.
const KEY = "okuma.lang";

export function lang() { return localStorage.getItem(KEY) === "en" ? "en" : "ja"; }

export function setLang(l) {
  localStorage.setItem(KEY, l === "en" ? "en" : "ja");
  document.documentElement.lang = lang();
}

// A translator for one dictionary {key: {ja, en}}; unknown keys fail loudly. The language is the
// chosen one unless asked for (to show the other one beside it).
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
  for (const el of root.querySelectorAll("[data-t-ph]")) el.setAttribute("placeholder", t(el.dataset.tPh));
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
