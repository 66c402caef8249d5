// Screen: family (link by a consent code, book for them, unlink), my notices, notice settings,
// LINE link, sign out.
import { clearToken, fmtDayTime, fmtTime } from "../api.js";
import { lang, el } from "../i18n.js";

const NOTICE_KINDS = new Set(["confirmed", "near", "boarded", "not_at_stop", "promise_at_risk", "cancelled", "delivered"]);
const CHANNELS = { line: "LINE", sms: "SMS", log: { ja: "記録のみ(開発用)", en: "log only (development)" } };

export function render(ctx, root) {
  const { t } = ctx;
  const L = lang();
  const alert = el("div", { class: "alert", role: "alert", id: "family-error" });
  const status = el("p", { role: "status", id: "family-status" });
  const fail = (e) => { alert.textContent = e.text ? e.text(L) : String(e); };

  // ---- family
  const famList = el("ul", { class: "booking-list", id: "family-list" });
  const loadFamily = async () => {
    let fam = [];
    try { fam = await ctx.api.family(); } catch (e) { fail(e); return; }
    if (!fam.length) { famList.replaceChildren(el("li", {}, t("family_none"))); return; }
    famList.replaceChildren(...fam.map((f) => el("li", { class: "card", dataset: { link: f.link_id } },
      el("p", {}, t(f.role === "guardian" ? "family_guardian" : "family_member", { name: f.name })),
      el("div", { class: "actions" },
        f.role === "guardian" ? el("button", { type: "button", class: "primary", dataset: { bookFor: f.account_id },
          onclick: () => { Object.assign(ctx.form, { forAccount: f.account_id }); ctx.go("#/new"); } },
        t("family_book", { name: f.name })) : null,
        el("button", { type: "button", class: "danger", onclick: async () => {
          try { await ctx.api.unlinkFamily(f.link_id); loadFamily(); } catch (e) { fail(e); }
        } }, t("family_unlink", { name: f.name }))))));
  };

  const phone = el("input", { id: "family-phone", type: "tel", inputmode: "tel", autocomplete: "off" });
  const name = el("input", { id: "family-name", type: "text", autocomplete: "off" });
  const code = el("input", { id: "family-code", type: "text", inputmode: "numeric", autocomplete: "off", maxlength: "6" });
  const codeStep = el("div", { class: "stack", id: "family-code-step", hidden: true },
    el("p", {}, t("family_sent")),
    el("label", { for: "family-code" }, t("family_code")), code,
    el("button", { type: "button", class: "primary", id: "family-confirm", onclick: async () => {
      alert.textContent = "";
      try {
        const f = await ctx.api.confirmFamily(codeStep.dataset.invitation, code.value.trim());
        status.textContent = t("family_linked", { name: f.name });
        codeStep.hidden = true;
        code.value = phone.value = name.value = "";
        loadFamily();
      } catch (e) { fail(e); code.focus(); }
    } }, t("family_confirm")));
  const invite = el("form", { class: "stack", novalidate: true, id: "family-invite" },
    el("h3", {}, t("family_invite")),
    el("label", { for: "family-name" }, t("family_name")), name,
    el("label", { for: "family-phone" }, t("family_phone")), phone,
    el("button", { type: "submit", id: "family-send" }, t("family_send")), codeStep,
    el("p", { class: "muted" }, t("family_desk")));
  invite.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    alert.textContent = "";
    if (!name.value.trim() || !phone.value.trim()) { alert.textContent = t("need_phone"); (name.value.trim() ? phone : name).focus(); return; }
    try {
      const inv = await ctx.api.inviteFamily(phone.value.trim(), name.value.trim());
      codeStep.dataset.invitation = inv.invitation_id;
      codeStep.hidden = false;
      code.focus();
    } catch (e) { fail(e); }
  });

  // ---- notices
  const noticeList = el("ul", { class: "notice-list", id: "notice-list" });
  const loadNotices = async () => {
    let ns = [];
    try { ns = await ctx.api.notices(); } catch { return; }
    const shown = ns.filter((n) => NOTICE_KINDS.has(n.kind));
    if (!shown.length) { noticeList.replaceChildren(el("li", {}, t("notices_none"))); return; }
    noticeList.replaceChildren(...shown.map((n) => {
      const ch = CHANNELS[n.channel];
      const via = typeof ch === "string" ? ch : ch ? ch[L] : n.channel;
      return el("li", { dataset: { kind: n.kind, booking: n.booking_id || "" } },
        el("strong", {}, t(`notice_${n.kind}`)), ` ${fmtDayTime(n.at, L)} `,
        el("span", { class: "muted" }, t("notice_via", { channel: via })),
        n.booking_id ? [" ", el("a", { href: `#/booking/${n.booking_id}` }, t("booking_title"))] : null);
    }));
  };

  // ---- settings and LINE
  const nearSel = el("select", { id: "near-minutes" },
    ((ctx.config && ctx.config.near_minutes_choices) || [3, 5, 10, 15]).map((n) =>
      el("option", { value: String(n), selected: ctx.profile && ctx.profile.near_minutes === n }, t("near_option", { n }))));
  // Door-to-door riders: the saved home (home.js), shown and changed from here.
  const homeSaved = ctx.profile && ctx.profile.door_to_door ? ctx.profile.home : null;
  const homeBox = ctx.profile && ctx.profile.door_to_door
    ? el("div", { class: "stack", id: "home-box" },
      el("p", { id: "home-saved" }, homeSaved ? t("h_saved_is", { address: homeSaved.address }) : t("h_none")),
      el("button", { type: "button", id: "home-edit", onclick: () => { ctx.homeBack = "#/family"; ctx.go("#/home"); } },
        t(homeSaved ? "h_change" : "h_set")))
    : null;
  const settings = el("div", { class: "stack" },
    homeBox,
    el("label", { for: "near-minutes" }, t("near_minutes")), nearSel,
    el("button", { type: "button", id: "save-settings", onclick: async () => {
      alert.textContent = "";
      try { ctx.profile = await ctx.api.updateProfile({ near_minutes: Number(nearSel.value) }); status.textContent = t("saved"); }
      catch (e) { fail(e); }
    } }, t("save")));
  const lineBox = el("div", { class: "stack", id: "line-box" });
  const drawLine = () => {
    if (ctx.profile && ctx.profile.line_linked) { lineBox.replaceChildren(el("p", {}, t("line_linked"))); return; }
    const out = el("p", { id: "line-code", "aria-live": "polite" });
    lineBox.replaceChildren(out, el("button", { type: "button", id: "line-start", onclick: async () => {
      try {
        const r = await ctx.api.lineLink();
        out.replaceChildren(t("line_code", { code: r.code, time: fmtTime(r.expires_at) }),
          r.friend_url ? [el("br"), el("a", { href: r.friend_url, rel: "noopener" }, t("line_friend"))] : null);
      } catch (e) { fail(e); }
    } }, t("line_start")));
  };
  drawLine();

  root.append(
    el("section", { class: "card", "aria-labelledby": "family-title" },
      el("h2", { id: "family-title", tabindex: "-1" }, t("family_title")), el("p", {}, t("family_help")), famList, invite),
    el("section", { class: "card", "aria-labelledby": "notices-title" },
      el("h2", { id: "notices-title" }, t("notices_title")), noticeList),
    el("section", { class: "card", "aria-labelledby": "settings-title" },
      el("h2", { id: "settings-title" }, t("settings_title")), settings,
      el("h3", {}, t("line_title")), lineBox),
    status, alert,
    el("div", { class: "actions" }, el("button", { type: "button", id: "sign-out", onclick: () => {
      clearToken("rider"); ctx.signedOut(); ctx.go("#/new");
    } }, t("sign_out"))));
  loadFamily();
  loadNotices();
  const timer = setInterval(loadNotices, 15000);
  root.querySelector("#family-title").focus();
  return () => clearInterval(timer);
}
