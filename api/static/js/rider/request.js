// Screen: what ride? from, to, when (now / leave at / arrive by), party, wheelchair → an offer.
import { newKey, tokyoDate, addDays, tokyoIso, fmtDayTime, fmtTime, serviceNow, causeText, stopName, hm, tokyoMinutes } from "../api.js";
import { lang, el } from "../i18n.js";
import { homePlace } from "./home.js";
import { HOME } from "./picker.js";

const MAX_PARTY = 6;

export function render(ctx, root) {
  const { t, form } = ctx;
  const L = lang();
  if (!form.day) form.day = tokyoDate();

  const alert = el("div", { class: "alert", role: "alert", id: "request-error" });
  const result = el("section", { id: "no-ride", "aria-live": "polite" });

  const placeButton = (which) => {
    const stop = ctx.stopById.get(form[which]);
    const home = form[which] === HOME ? homePlace(ctx) : null;
    return el("button", {
      type: "button", class: "place-btn", id: `pick-${which}`,
      onclick: () => ctx.go(`#/pick/${which}`),
    },
    el("span", {}, t(which)),
    el("span", { class: "value" }, home ? `${t("d_home")}(${home.address})` : stop ? stopName(stop, L) : t("choose")));
  };

  const swap = el("button", {
    type: "button", id: "swap", "aria-label": t("swap"), title: t("swap"),
    onclick: () => { [form.origin, form.destination] = [form.destination, form.origin]; ctx.rerender(); },
  }, "⇅");

  // when
  const modeButtons = ["now", "leave_at", "arrive_by"].map((m) => el("button", {
    type: "button", id: `mode-${m}`, "aria-pressed": String(form.mode === m),
    onclick: () => { form.mode = m; ctx.rerender(); },
  }, t(m)));
  const whenBox = el("fieldset", {}, el("legend", {}, t("when")), el("div", { class: "seg" }, modeButtons));
  if (form.mode === "now") {
    const s = serviceNow();
    if (!s.open) {
      const when = fmtDayTime(s.iso, L);
      whenBox.append(el("div", { class: "notice", id: "closed-now" },
        el("p", {}, t("closed_now", { when })),
        el("button", {
          type: "button", class: "primary", id: "book-next",
          onclick: () => { form.mode = "leave_at"; form.day = s.day; form.time = s.time; ctx.autoSearch = true; ctx.rerender(); },
        }, t("book_next", { when }))));
    }
  } else {
    const daySel = el("select", { id: "day", name: "day", onchange: (e) => { form.day = e.target.value; } });
    const today = tokyoDate();
    for (let i = 0; i < 7; i++) {
      const d = addDays(today, i);
      const label = i === 0 ? t("today") : i === 1 ? t("tomorrow") : fmtDayTime(tokyoIso(d, "12:00"), L).split(" ")[0];
      daySel.append(el("option", { value: d, selected: d === form.day }, label));
    }
    if (!form.time) {
      const m = Math.min(Math.max(Math.ceil((tokyoMinutes() + 30) / 15) * 15, 7 * 60), 19 * 60 + 45);
      form.time = hm(m);
    }
    const timeIn = el("input", {
      id: "time", name: "time", type: "time", min: "07:00", max: "20:00", step: "300", value: form.time,
      oninput: (e) => { form.time = e.target.value; },
    });
    whenBox.append(el("div", { class: "row" },
      el("div", { class: "grow" }, el("label", { for: "day" }, t("day")), daySel),
      el("div", { class: "grow" }, el("label", { for: "time" }, t(form.mode === "arrive_by" ? "arrive_by" : "leave_at")), timeIn)));
  }

  // party and wheelchair
  const out = el("output", { id: "party", "aria-live": "polite", for: "party-minus party-plus" }, t("persons", { n: form.party }));
  const setParty = (n) => { form.party = Math.min(MAX_PARTY, Math.max(1, n)); out.textContent = t("persons", { n: form.party }); };
  const partyBox = el("fieldset", {}, el("legend", { id: "party-legend" }, t("party")),
    el("div", { class: "stepper" },
      el("button", { type: "button", id: "party-minus", "aria-label": t("fewer"), onclick: () => setParty(form.party - 1) }, "−"),
      out,
      el("button", { type: "button", id: "party-plus", "aria-label": t("more"), onclick: () => setParty(form.party + 1) }, "+")));
  const wc = el("input", { type: "checkbox", id: "wheelchair", name: "wheelchair", checked: form.wheelchair,
    onchange: (e) => { form.wheelchair = e.target.checked; } });

  const submit = el("button", { type: "submit", class: "primary", id: "search" }, t("search"));

  // Favourites: one tap fills the form (the time stays "now" unless changed).
  const favBox = el("section", { class: "card", id: "favourites", hidden: true, "aria-labelledby": "fav-title" });
  async function loadFavourites() {
    let favs = [];
    try { favs = await ctx.api.favourites(); } catch { return; }
    if (!favs.length) return;
    favBox.hidden = false;
    favBox.replaceChildren(el("h2", { id: "fav-title" }, t("favourites")),
      el("ul", { class: "fav-list" }, favs.map((f) => el("li", {},
        el("button", { type: "button", class: "fav", dataset: { favourite: f.id }, onclick: () => {
          Object.assign(form, { origin: f.origin_stop_id, destination: f.destination_stop_id, party: f.party_size,
            wheelchair: f.wheelchairs > 0 });
          ctx.rerender();
        } }, t("favourite_use", { label: f.label })),
        el("button", { type: "button", class: "fav-delete", "aria-label": t("favourite_delete", { label: f.label }),
          onclick: async () => { await ctx.api.deleteFavourite(f.id).catch(() => {}); ctx.rerender(); } }, "×")))));
  }

  // For whom: me, or a linked family member (the booking is theirs; I am told of it too).
  const whoBox = el("div", { id: "who-box" });
  async function loadFamily() {
    let fam = [];
    try { fam = (await ctx.api.family()).filter((f) => f.role === "guardian"); } catch { return; }
    if (!fam.length) { form.forAccount = ""; return; }
    const sel = el("select", { id: "for-whom", name: "for-whom", onchange: (e) => { form.forAccount = e.target.value; } },
      el("option", { value: "", selected: !form.forAccount }, t("myself")),
      fam.map((f) => el("option", { value: f.account_id, selected: form.forAccount === f.account_id }, f.name)));
    whoBox.replaceChildren(el("label", { for: "for-whom" }, t("for_whom")), sel);
  }
  const formEl = el("form", { class: "card", novalidate: true, onsubmit: (e) => { e.preventDefault(); search(); } },
    el("h2", {}, t("req_title")),
    whoBox,
    el("div", { class: "stack" }, placeButton("origin"), el("div", { class: "row center" }, swap), placeButton("destination")),
    whenBox, partyBox,
    el("div", { class: "check" }, wc, el("label", { for: "wheelchair" }, t("wheelchair"))),
    alert,
    el("div", { class: "actions" }, submit));
  root.append(favBox, formEl, result);
  loadFavourites();
  loadFamily();
  if (ctx.autoSearch) { ctx.autoSearch = false; search(); }

  async function search() {
    alert.textContent = "";
    result.replaceChildren();
    if (!form.origin || !form.destination) { alert.textContent = t("need_places"); return; }
    if (form.origin === form.destination) { alert.textContent = t("same_places"); return; }
    // "home": the saved home's position and address (door-to-door); else the stop.
    const place = (which) => (form[which] === HOME ? homePlace(ctx) : { stop_id: form[which] });
    if (!place("origin") || !place("destination")) { alert.textContent = t("need_places"); return; }
    const req = {
      origin: place("origin"), destination: place("destination"),
      time_mode: form.mode, party_size: form.party, wheelchairs: form.wheelchair ? 1 : 0,
    };
    if (form.forAccount) req.for_account_id = form.forAccount;
    if (form.mode !== "now") {
      if (!form.time) { alert.textContent = t("need_time"); return; }
      req.time = tokyoIso(form.day, form.time);
    }
    submit.disabled = true;
    submit.textContent = t("searching");
    try {
      const offer = await ctx.api.offer(req);
      // One Idempotency-Key per offer: a double tap on confirm can never book twice.
      ctx.offer = { offer, key: newKey(), request: req };
      ctx.go("#/offer");
    } catch (e) {
      submit.disabled = false;
      submit.textContent = t("search");
      showError(e);
    }
  }

  function showError(e) {
    const code = e.code;
    if (code === "NoRideAvailable") {
      const alts = [...(e.body.alternatives || [])].sort((a, b) => new Date(a) - new Date(b));
      result.append(el("div", { class: "card stack", role: "alert" },
        el("h2", { id: "no-ride-title", tabindex: "-1" }, t("no_ride")),
        el("p", { id: "cause" }, causeText(e.body.cause, L)),
        alts.length ? el("p", {}, t("alts_intro")) : el("p", {}, t("no_alts")),
        el("div", { class: "alts" }, alts.map((iso) => el("button", {
          type: "button", class: "primary alt", dataset: { time: iso },
          onclick: () => { form.mode = "leave_at"; form.day = tokyoDate(new Date(iso)); form.time = fmtTime(iso).padStart(5, "0"); ctx.autoSearch = true; ctx.rerender(); },
        }, t("alt_button", { when: fmtDayTime(iso, L) }))))));
      result.querySelector("#no-ride-title").focus();
      return;
    }
    if (code === "OutsideServiceHours") {
      const s = serviceNow(e.body.service_start, e.body.service_end);
      alert.textContent = e.text(L);
      if (!s.open) {
        alert.append(el("br"), el("button", {
          type: "button", class: "primary", id: "book-next-err",
          onclick: () => { form.mode = "leave_at"; form.day = s.day; form.time = s.time; ctx.rerender(); },
        }, t("book_next", { when: fmtDayTime(s.iso, L) })));
      }
      return;
    }
    alert.textContent = e.text ? e.text(L) : String(e);
  }
}
