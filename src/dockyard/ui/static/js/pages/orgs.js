import { del, enc, get, post, put, showErrors } from "../api.js";
import { clear, confirmAction, field, h, table, toast } from "../dom.js";
import { state } from "../app.js";
import { pagedList } from "../paging.js";

export async function renderList(main) {
  main.append(h("h1", {}, "Organizations"));
  const holder = h("div");
  const pager = h("div", { class: "pager" });
  main.append(holder, pager);
  const draw = (orgs) => holder.append(table(["Name", "Full name"], orgs.map((o) => h("tr", { "data-org": o.name },
    h("td", {}, h("a", { href: `#/organizations/${enc(o.name)}` }, o.name)), h("td", {}, o.fullName))), "No organizations."));
  if (state.account.isAdmin) {
    await pagedList(holder, pager, "/accounts", { type: "organization", pageSize: 50 }, (body) => draw(body.accounts))();
  } else {
    draw((await get(`/accounts/${enc(state.account.name)}/organizations`)).organizations);
  }
  if (state.account.isAdmin) {
    const form = h("form", { class: "card", id: "new-organization" }, h("h2", {}, "New organization"),
      field("Name", "name", { required: true }), field("Full name", "fullName"),
      h("p", { class: "error", "data-error-for": "_form" }), h("button", { type: "submit" }, "Create organization"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const d = new FormData(form);
      try {
        const o = await post("/accounts", { type: "organization", name: d.get("name"), fullName: d.get("fullName") });
        toast(`Created ${o.name}`); location.hash = `#/organizations/${enc(o.name)}`;
      } catch (e) { showErrors(form, e); }
    });
    main.append(form);
  }
}

export async function renderOrg(main, org) {
  main.append(h("p", {}, h("a", { href: "#/organizations" }, "← Organizations")), h("h1", {}, org));
  const teams = (await get(`/accounts/${enc(org)}/teams`)).teams;
  main.append(h("h2", {}, "Teams"), table(["Team", "Description", "Type"], teams.map((t) => h("tr", { "data-team": t.name },
    h("td", {}, h("a", { href: `#/organizations/${enc(org)}/teams/${enc(t.name)}` }, t.name)), h("td", {}, t.description), h("td", {}, t.type)))));
  const form = h("form", { class: "card", id: "new-team" }, h("h2", {}, "New team"),
    field("Name", "name", { required: true }), field("Description", "description"),
    h("p", { class: "error", "data-error-for": "_form" }), h("button", { type: "submit" }, "Create team"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const d = new FormData(form);
    try {
      const t = await post(`/accounts/${enc(org)}/teams`, { name: d.get("name"), description: d.get("description") });
      toast(`Created team ${t.name}`); location.hash = `#/organizations/${enc(org)}/teams/${enc(t.name)}`;
    } catch (e) { showErrors(form, e); }
  });
  main.append(form, h("p", {}, h("a", { href: "#/repositories" }, "Repositories"), ` of ${org}: filter by namespace "${org}".`));
  main.append(await namespaceGrants(org, teams));
}

// Team grants on every repository of the organization (repositoryNamespaces/{org}/teamAccess).
async function namespaceGrants(org, teams) {
  const base = `/repositoryNamespaces/${enc(org)}/teamAccess`;
  const section = h("section", { class: "card", id: "namespace-grants" });
  async function load() {
    clear(section);
    section.append(h("h2", {}, `Access to every repository of ${org}`));
    const grants = (await get(base)).teamAccessList;
    section.append(table(["Team", "Level", ""], grants.map((g) => {
      const remove = h("button", { type: "button", class: "danger" }, "Revoke");
      remove.addEventListener("click", async () => {
        if (!(await confirmAction(`Revoke ${g.team.name}'s access to every repository of ${org}?`, "Revoke"))) return;
        try { await del(`${base}/${enc(g.team.name)}`); load(); } catch (e) { toast(e.message); }
      });
      return h("tr", { "data-grant": g.team.name }, h("td", {}, g.team.name), h("td", {}, g.accessLevel), h("td", {}, remove));
    }), "No organization-wide grants."));
    const form = h("form", { class: "row", id: "grant-namespace" },
      field("Team", "team", { tag: "select", options: teams.map((t) => t.name) }),
      field("Level", "level", { tag: "select", options: ["read-only", "read-write", "admin"], value: "read-only" }),
      h("button", { type: "submit" }, "Grant"), h("p", { class: "error", "data-error-for": "_form" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const d = new FormData(form);
      try { await put(`${base}/${enc(d.get("team"))}`, { accessLevel: d.get("level") }); toast("Granted"); load(); } catch (e) { showErrors(form, e); }
    });
    section.append(form);
  }
  try { await load(); } catch (e) { section.append(h("p", { class: "muted" }, e.message)); }
  return section;
}

export async function renderTeam(main, org, team) {
  const base = `/accounts/${enc(org)}/teams/${enc(team)}`;
  main.append(h("p", {}, h("a", { href: `#/organizations/${enc(org)}` }, `← ${org}`)), h("h1", {}, `${org} / ${team}`));
  const holder = h("div");
  main.append(holder);
  async function load() {
    clear(holder);
    const members = (await get(`${base}/members`)).members;
    holder.append(h("h2", {}, "Members"), table(["User", ""], members.map((m) => {
      const remove = h("button", { type: "button", class: "danger" }, "Remove");
      remove.addEventListener("click", async () => {
        if (!(await confirmAction(`Remove ${m.name} from ${team}?`, "Remove"))) return;
        try { await del(`${base}/members/${enc(m.name)}`); load(); } catch (e) { toast(e.message); }
      });
      return h("tr", { "data-member": m.name }, h("td", {}, m.name), h("td", {}, remove));
    }), "No members."));
    const form = h("form", { class: "row", id: "add-member" }, field("User", "user", { required: true }),
      h("button", { type: "submit" }, "Add member"), h("p", { class: "error", "data-error-for": "_form" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { await put(`${base}/members/${enc(new FormData(form).get("user"))}`); toast("Added"); load(); } catch (e) { showErrors(form, e); }
    });
    holder.append(form);
  }
  await load();
  const remove = h("button", { type: "button", class: "danger" }, "Delete team");
  remove.addEventListener("click", async () => {
    if (!(await confirmAction(`Delete team ${team}?`))) return;
    try { await del(base); location.hash = `#/organizations/${enc(org)}`; } catch (e) { toast(e.message); }
  });
  main.append(h("section", { class: "card" }, remove));
}
