// #/signin: the API key, checked with GET /v1/me before it is kept for this tab.

import { api } from "../api.js";
import { h, put } from "../dom.js";
import { t } from "../i18n.js";
import { signIn } from "../session.js";
import { field, heading } from "./common.js";

/** The sign-in form; `onSignedIn(next)` runs once the key is accepted. */
export function signInView(main, { query }, onSignedIn) {
  const message = h("div", { "aria-live": "assertive" }, query.expired ? h("p", { class: "error", role: "alert" }, t("sessionExpired")) : null);
  const form = h(
    "form",
    { class: "signin card" },
    field("key", t("signInKey"), { type: "password", autocomplete: "off", spellcheck: "false", required: true }),
    h("p", { class: "muted" }, t("signInHelp")),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, t("signInSubmit"))),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = form.elements.key.value.trim();
    if (!key) return;
    try {
      const who = await api("/v1/me", { key });
      signIn(key, who);
      await onSignedIn(query.next);
    } catch (error) {
      put(message, h("p", { class: "error", role: "alert" }, error.status === 401 ? t("signInBad") : error.message));
      form.elements.key.select();
    }
  });
  put(main, heading(t("signInTitle")), form);
  form.elements.key.focus();
}
