// Screen: paste the rider token once; it is checked and kept in localStorage.
import { Api, setToken, clearToken } from "../api.js";
import { lang, el } from "../i18n.js";

export function render(ctx, root) {
  const { t } = ctx;
  const alert = el("div", { class: "alert", role: "alert", id: "login-error" });
  const input = el("input", { id: "token", name: "token", type: "text", autocomplete: "off", spellcheck: "false", autocapitalize: "off", required: true });
  const form = el("form", { class: "card stack", novalidate: true },
    el("h2", {}, t("login_title")),
    el("p", {}, t("login_help")),
    el("label", { for: "token" }, t("login_label")),
    input,
    alert,
    el("button", { type: "submit", class: "primary" }, t("login_button")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    alert.textContent = "";
    const token = input.value.trim();
    if (!token) { alert.textContent = t("login_bad"); input.focus(); return; }
    setToken("rider", token);
    try {
      const me = await new Api("rider").me();
      if (me.role !== "rider") throw new Error("role");
      ctx.go("#/new");
    } catch (e) {
      clearToken("rider");
      alert.textContent = e.text ? e.text(lang()) : t("login_bad");
      input.focus();
    }
  });
  root.append(form);
  input.focus();
}
