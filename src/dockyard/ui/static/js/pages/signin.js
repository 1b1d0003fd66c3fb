import { post, showErrors } from "../api.js";
import { field, h } from "../dom.js";

export function render(main, onSignedIn) {
  const form = h("form", { class: "card signin", novalidate: true },
    h("h1", {}, "Sign in to Dockyard"),
    field("Username", "username", { required: true, autocomplete: "username" }),
    field("Password", "password", { type: "password", required: true, autocomplete: "current-password" }),
    h("p", { class: "error", "data-error-for": "_form", role: "alert" }),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    if (!data.get("username") || !data.get("password")) {
      showErrors(form, new Error("Enter your username and password."));
      return;
    }
    try {
      onSignedIn(await post("/session", { username: data.get("username"), password: data.get("password") }));
    } catch (e) {
      showErrors(form, e.status === 401 ? new Error("Incorrect username or password.") : e);
      form.querySelector("[data-error-for='_form']").textContent ||= e.message;
    }
  });
  main.append(form);
  form.querySelector("input").focus();
}
