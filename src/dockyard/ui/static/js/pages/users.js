import { del, enc, get, post, showErrors } from "../api.js";
import { clear, confirmAction, field, h, table, toast, when } from "../dom.js";
import { pagedList } from "../paging.js";

export async function renderList(main) {
  main.append(h("h1", {}, "Users"));
  const holder = h("div");
  const pager = h("div", { class: "pager" });
  main.append(holder, pager);
  const load = pagedList(holder, pager, "/accounts", { type: "user", pageSize: 50 }, (body) => {
    holder.append(table(["Name", "Full name", "Admin", "Active"], body.accounts.map((u) => h("tr", { "data-user-row": u.name },
      h("td", {}, h("a", { href: `#/users/${enc(u.name)}` }, u.name)), h("td", {}, u.fullName),
      h("td", {}, u.isAdmin ? "yes" : ""), h("td", {}, u.isActive ? "yes" : "no")))));
  });
  await load();
  const form = h("form", { class: "card", id: "new-user" }, h("h2", {}, "New user"),
    field("Name", "name", { required: true }), field("Password", "password", { type: "password", required: true, autocomplete: "new-password" }),
    field("Full name", "fullName"), field("Email", "email", { type: "email" }),
    h("div", { class: "field" }, h("label", {}, h("input", { type: "checkbox", name: "isAdmin" }), " Administrator")),
    h("p", { class: "error", "data-error-for": "_form" }), h("button", { type: "submit" }, "Create user"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const d = new FormData(form);
    try {
      const u = await post("/accounts", { type: "user", name: d.get("name"), password: d.get("password"), fullName: d.get("fullName"), email: d.get("email"), isAdmin: d.get("isAdmin") !== null });
      toast(`Created ${u.name}`); location.hash = `#/users/${enc(u.name)}`;
    } catch (e) { showErrors(form, e); }
  });
  main.append(form);
}

export async function renderUser(main, name) {
  const user = await get(`/accounts/${enc(name)}`);
  main.append(h("h1", {}, user.name), h("dl", { class: "props card" },
    h("dt", {}, "Full name"), h("dd", {}, user.fullName || "—"), h("dt", {}, "Email"), h("dd", {}, user.email || "—"),
    h("dt", {}, "Administrator"), h("dd", {}, user.isAdmin ? "yes" : "no"), h("dt", {}, "Created"), h("dd", {}, when(user.createdAt))));
  const holder = h("section", { class: "card", id: "tokens" });
  main.append(holder);
  async function load() {
    clear(holder);
    holder.append(h("h2", {}, "Access tokens"));
    const tokens = (await get(`/accounts/${enc(name)}/tokens`)).tokens;
    holder.append(table(["Name", "Created", "Last used", ""], tokens.map((t) => {
      const revoke = h("button", { type: "button", class: "danger", disabled: t.revoked }, t.revoked ? "Revoked" : "Revoke");
      revoke.addEventListener("click", async () => {
        if (!(await confirmAction(`Revoke token ${t.name}? Scripts using it stop working.`, "Revoke"))) return;
        await del(`/accounts/${enc(name)}/tokens/${enc(t.id)}`); load();
      });
      return h("tr", {}, h("td", {}, t.name), h("td", {}, when(t.createdAt)), h("td", {}, when(t.lastUsedAt)), h("td", {}, revoke));
    }), "No tokens."));
    const form = h("form", { class: "row" }, field("Token name", "name", { required: true }), h("button", { type: "submit" }, "Create token"),
      h("p", { class: "error", "data-error-for": "_form" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const t = await post(`/accounts/${enc(name)}/tokens`, { name: new FormData(form).get("name") });
        await load();
        holder.append(h("p", { class: "ok" }, "Copy the token now, it is shown only once: ", h("code", {}, t.token)));
      } catch (e) { showErrors(form, e); }
    });
    holder.append(form);
  }
  await load();
}
