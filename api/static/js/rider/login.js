// Screen: sign in with a phone number and a one-time code (the code arrives by SMS, or LINE once
// linked); a token from the town desk still works, folded away below.
import { Api, setToken, clearToken, fmtTime } from "../api.js";
import { lang, el } from "../i18n.js";

export function render(ctx, root) {
  const { t } = ctx;
  const L = lang();
  const api = new Api("rider");
  const state = { phone: "", sent: null };
  const alert = el("div", { class: "alert", role: "alert", id: "signin-error" });
  const status = el("p", { role: "status", id: "signin-status" });
  const box = el("div", {});

  const fail = (e, focus) => { alert.textContent = e.text ? e.text(L) : String(e); if (focus) focus.focus(); };

  const phoneStep = () => {
    const phone = el("input", { id: "phone", name: "phone", type: "tel", inputmode: "tel", autocomplete: "tel",
      required: true, "aria-describedby": "phone-hint", value: state.phone });
    const send = el("button", { type: "submit", class: "primary", id: "send-code" }, t("send_code"));
    const form = el("form", { class: "stack", novalidate: true },
      el("label", { for: "phone" }, t("phone_label")), phone,
      el("p", { class: "muted", id: "phone-hint" }, t("phone_hint")), send);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      alert.textContent = "";
      if (!phone.value.trim()) { alert.textContent = t("need_phone"); phone.focus(); return; }
      send.disabled = true;
      send.textContent = t("sending");
      try {
        state.phone = phone.value.trim();
        state.sent = await api.sendCode(state.phone);
        codeStep();
      } catch (e) {
        send.disabled = false;
        send.textContent = t("send_code");
        fail(e, phone);
      }
    });
    box.replaceChildren(form);
    return phone;
  };

  const codeStep = () => {
    status.textContent = t("code_sent", { time: fmtTime(state.sent.expires_at) });
    const code = el("input", { id: "code", name: "code", type: "text", inputmode: "numeric", autocomplete: "one-time-code",
      maxlength: "6", required: true });
    const name = el("input", { id: "name", name: "name", type: "text", autocomplete: "name" });
    const go = el("button", { type: "submit", class: "primary", id: "verify-code" }, t("sign_in"));
    const form = el("form", { class: "stack", novalidate: true },
      el("label", { for: "code" }, t("code_label")), code,
      el("label", { for: "name" }, t("name_label")), name, go,
      el("button", { type: "button", id: "resend", onclick: async () => {
        alert.textContent = "";
        try { state.sent = await api.sendCode(state.phone); status.textContent = t("code_sent", { time: fmtTime(state.sent.expires_at) }); }
        catch (e) { fail(e, code); }
      } }, t("resend")),
      el("button", { type: "button", id: "other-phone", onclick: () => { status.textContent = ""; phoneStep().focus(); } }, t("other_phone")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      alert.textContent = "";
      if (!code.value.trim()) { alert.textContent = t("need_code"); code.focus(); return; }
      go.disabled = true;
      try {
        const done = await api.verifyCode(state.phone, code.value.trim(), name.value.trim());
        setToken("rider", done.token);
        ctx.go("#/new");
      } catch (e) {
        go.disabled = false;
        code.value = "";
        fail(e, code);
      }
    });
    box.replaceChildren(form);
    code.focus();
  };

  // The token from the town desk (kept for residents who were given one).
  const token = el("input", { id: "token", name: "token", type: "text", autocomplete: "off", spellcheck: "false", autocapitalize: "off" });
  const tokenForm = el("form", { class: "stack", novalidate: true },
    el("p", {}, t("login_help")),
    el("label", { for: "token" }, t("login_label")), token,
    el("button", { type: "submit", id: "save-token" }, t("login_button")));
  tokenForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    alert.textContent = "";
    const value = token.value.trim();
    if (!value) { alert.textContent = t("login_bad"); token.focus(); return; }
    setToken("rider", value);
    try {
      const me = await new Api("rider").me();
      if (me.role !== "rider") throw new Error("role");
      ctx.go("#/new");
    } catch (e) {
      clearToken("rider");
      alert.textContent = e.text ? e.text(L) : t("login_bad");
      token.focus();
    }
  });

  root.append(el("section", { class: "card stack", "aria-labelledby": "signin-title" },
    el("h2", { id: "signin-title" }, t("signin_title")),
    el("p", {}, t("signin_help")),
    box, status, alert,
    el("details", { id: "token-details" }, el("summary", {}, t("token_details")), tokenForm)));
  phoneStep().focus();
}
