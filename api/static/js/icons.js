// Icons as inline SVG (no emoji: a kiosk may have no emoji font). Decorative: the button text names them.
const NS = "http://www.w3.org/2000/svg";

const PATHS = {
  // a loudspeaker, with sound waves (on) or a cross (off)
  voice_on: ["M4 9h4l5-4v14l-5-4H4z", "M16 8.5a5 5 0 0 1 0 7", "M18.5 6a8.5 8.5 0 0 1 0 12"],
  voice_off: ["M4 9h4l5-4v14l-5-4H4z", "M16 9l5 6", "M21 9l-5 6"],
  repeat: ["M4 12a8 8 0 0 1 14-5.3", "M18 3v4h-4", "M20 12a8 8 0 0 1-14 5.3", "M6 21v-4h4"],
  phone: ["M6.6 3.5l3 3.2-1.8 2.6a12 12 0 0 0 6 6l2.6-1.8 3.2 3-1.7 3A3 3 0 0 1 15 20.9 17 17 0 0 1 3.1 9 3 3 0 0 1 3.6 6.4z"],
  wheelchair: ["M11 4.5a1.5 1.5 0 1 0 0-.01", "M10 7v6h6l2 5", "M10 10h5", "M8 10.5a5.5 5.5 0 1 0 7.5 7"],
  search: ["M10.5 4a6.5 6.5 0 1 1 0 13 6.5 6.5 0 0 1 0-13z", "M15.5 15.5L21 21"],
  bus: ["M5 4h14v12H5z", "M5 10h14", "M7.5 19.5a1.5 1.5 0 1 0 0-.01", "M16.5 19.5a1.5 1.5 0 1 0 0-.01"],
  check: ["M4 12.5l5 5L20 6.5"],
  back: ["M15 5l-7 7 7 7"],
  warning: ["M12 3l10 18H2z", "M12 10v5", "M12 18v.01"],
  pin: ["M12 21s-6-5.5-6-11a6 6 0 0 1 12 0c0 5.5-6 11-6 11z", "M12 7.5a2.5 2.5 0 1 0 0 5 2.5 2.5 0 0 0 0-5z"],
  home: ["M3 11l9-7 9 7", "M5 10v10h14V10", "M10 20v-6h4v6"],
};

export function icon(name, size = 40) {
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", `icon icon-${name}`);
  for (const d of PATHS[name] || []) {
    const p = document.createElementNS(NS, "path");
    p.setAttribute("d", d);
    p.setAttribute("fill", "none");
    p.setAttribute("stroke", "currentColor");
    p.setAttribute("stroke-width", "2");
    p.setAttribute("stroke-linecap", "round");
    p.setAttribute("stroke-linejoin", "round");
    svg.append(p);
  }
  if (!PATHS[name]) throw new Error(`unknown icon: ${name}`);
  return svg;
}
