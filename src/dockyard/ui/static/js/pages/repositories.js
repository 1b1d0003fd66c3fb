import { call, enc, post, q, showErrors } from "../api.js";
import { clear, field, h, table, toast, when } from "../dom.js";

const PAGE = 25;

export async function render(main) {
  main.append(h("h1", {}, "Repositories"));
  const filters = h("form", { class: "toolbar", role: "search" },
    field("Search", "search", { placeholder: "name contains…" }),
    field("Namespace", "namespace", { placeholder: "any" }),
    field("Visibility", "visibility", { tag: "select", options: ["", "public", "private"] }),
    h("button", { type: "submit" }, "Filter"));
  const list = h("div", { "aria-live": "polite" });
  const pager = h("div", { class: "pager" });
  main.append(filters, list, pager, createForm());
  const starts = [null]; // the cursor of each page seen, for "Previous"
  let page = 0;

  async function load() {
    const data = new FormData(filters);
    const ns = String(data.get("namespace") || "").trim();
    const params = q({ pageSize: PAGE, pageStart: starts[page], search: data.get("search"), visibility: data.get("visibility") });
    clear(list); clear(pager);
    let response;
    try {
      response = await call("GET", `/repositories${ns ? `/${enc(ns)}` : ""}${params}`, undefined, { raw: true });
    } catch (e) {
      list.append(h("p", { class: "error" }, e.message));
      return;
    }
    const body = await response.json();
    const next = response.headers.get("X-Next-Page-Start");
    list.append(table(["Name", "Visibility", h("th", { class: "wide", scope: "col" }, "Description"), h("th", { class: "wide", scope: "col" }, "Created")],
      body.repositories.map((r) => h("tr", { "data-repo": `${r.namespace}/${r.name}` },
        h("td", {}, h("a", { href: `#/repositories/${enc(r.namespace)}/${enc(r.name)}` }, `${r.namespace}/${r.name}`)),
        h("td", {}, h("span", { class: `badge ${r.visibility}` }, r.visibility)),
        h("td", { class: "wide" }, r.shortDescription),
        h("td", { class: "wide" }, when(r.createdAt)))),
      "No repositories match."));
    const prev = h("button", { type: "button", class: "secondary", disabled: page === 0 }, "Previous");
    const more = h("button", { type: "button", class: "secondary", disabled: !next, "data-next": "" }, "Next");
    prev.addEventListener("click", () => { page -= 1; load(); });
    more.addEventListener("click", () => { starts[page + 1] = next; page += 1; load(); });
    pager.append(prev, h("span", { class: "muted" }, `Page ${page + 1}`), more);
  }
  filters.addEventListener("submit", (e) => { e.preventDefault(); starts.length = 1; page = 0; load(); });
  await load();
}

function createForm() {
  const form = h("form", { class: "card", id: "new-repository" },
    h("h2", {}, "New repository"),
    field("Namespace (your user or an organization)", "namespace", { required: true }),
    field("Name", "name", { required: true }),
    field("Description", "shortDescription"),
    field("Visibility", "visibility", { tag: "select", options: ["private", "public"] }),
    h("p", { class: "error", "data-error-for": "_form" }),
    h("button", { type: "submit" }, "Create repository"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const d = new FormData(form);
    const ns = String(d.get("namespace") || "").trim();
    if (!ns) return showErrors(form, new Error("namespace: required"));
    try {
      const r = await post(`/repositories/${enc(ns)}`, { name: d.get("name"), shortDescription: d.get("shortDescription"), visibility: d.get("visibility") });
      toast(`Created ${r.namespace}/${r.name}`);
      location.hash = `#/repositories/${enc(r.namespace)}/${enc(r.name)}`;
    } catch (e) { showErrors(form, e); }
  });
  return form;
}
