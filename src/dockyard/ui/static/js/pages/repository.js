import { call, del, enc, get, patch, q, showErrors } from "../api.js";
import { bytes, clear, confirmAction, field, h, table, toast, when } from "../dom.js";

export function pullLine(repo, ref) {
  const host = location.host;
  const line = ref.startsWith("sha256:") ? `docker pull ${host}/${repo}@${ref}` : `docker pull ${host}/${repo}:${ref}`;
  const code = h("code", { "data-pull": "" }, line);
  const button = h("button", { type: "button", class: "secondary" }, "Copy");
  button.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(line); toast("Copied"); } catch { toast("Select the line and copy it"); }
  });
  return h("div", { class: "copy" }, code, button);
}

export async function render(main, ns, name) {
  const base = `/repositories/${enc(ns)}/${enc(name)}`;
  const repo = await get(base);
  const full = `${repo.namespace}/${repo.name}`;
  main.append(h("h1", {}, full, " ", h("span", { class: `badge ${repo.visibility}`, "data-visibility": "" }, repo.visibility)));
  main.append(h("p", { "data-description": "" }, repo.shortDescription || ""));
  main.append(h("div", { class: "tabs" }, h("a", { href: `#/repositories/${enc(ns)}/${enc(name)}/settings` }, "Settings, lifecycle and webhooks")));
  main.append(h("p", { class: "muted", "data-last-pulled": "" }, repo.lastPulledAt ? `Last pulled ${when(repo.lastPulledAt)}` : "Never pulled"));
  // The pull line names a real tag: the first one, once the tag list has loaded.
  const pull = h("div", { "data-pull-holder": "" });
  main.append(pull);

  const edit = h("form", { class: "card", id: "repository-edit" },
    h("h2", {}, "Description and visibility"),
    field("Description", "shortDescription", { value: repo.shortDescription }),
    field("Visibility", "visibility", { tag: "select", options: ["private", "public"], value: repo.visibility }),
    h("p", { class: "error", "data-error-for": "_form" }),
    h("button", { type: "submit" }, "Save"));
  edit.addEventListener("submit", async (event) => {
    event.preventDefault();
    const d = new FormData(edit);
    try {
      await patch(base, { shortDescription: d.get("shortDescription"), visibility: d.get("visibility") });
      toast("Saved");
      clear(main); await render(main, ns, name);
    } catch (e) { showErrors(edit, e); }
  });

  const tags = h("section", {}, h("h2", {}, "Tags"));
  main.append(tags);
  await tagList(tags, base, ns, name, full, (rows) => {
    if (!pull.firstChild && rows.length) pull.append(pullLine(full, rows[0].name));
  });
  main.append(edit);
  const perms = h("section", { class: "card" }, h("h2", {}, "Permissions"));
  main.append(perms);
  await permissions(perms, base);

  const remove = h("button", { type: "button", class: "danger" }, "Delete repository");
  remove.addEventListener("click", async () => {
    if (!(await confirmAction(`Delete ${full} with all its tags? This cannot be undone.`))) return;
    try { await del(base); toast(`Deleted ${full}`); location.hash = "#/repositories"; } catch (e) { toast(e.message); }
  });
  main.append(h("section", { class: "card" }, h("h2", {}, "Danger zone"), remove));
}

async function tagList(section, base, ns, name, full, onPage) {
  const holder = h("div");
  const pager = h("div", { class: "pager" });
  section.append(holder, pager);
  const starts = [null];
  let page = 0;
  async function load() {
    clear(holder); clear(pager);
    const response = await call("GET", `${base}/tags${q({ pageSize: 50, pageStart: starts[page] })}`, undefined, { raw: true });
    const rows = await response.json();
    const next = response.headers.get("X-Next-Page-Start");
    onPage(rows);
    holder.append(table(["Tag", "Digest", "Size", "Platforms", "Pushed", "Last pulled", "Signed"], rows.map((t) => h("tr", { "data-tag": t.name },
      h("td", {}, h("a", { href: `#/repositories/${enc(ns)}/${enc(name)}/tags/${enc(t.name)}` }, t.name)),
      h("td", { class: "mono" }, t.digest.slice(0, 19) + "…"),
      h("td", { "data-size": "" }, bytes(t.size)),
      h("td", { "data-platforms": "" }, t.platforms.length ? t.platforms.join(", ") : "—"),
      h("td", { "data-pushed": "" }, when(t.updatedAt), t.pushedBy ? ` by ${t.pushedBy}` : ""),
      h("td", { "data-last-pulled": "" }, t.lastPulledAt ? when(t.lastPulledAt) : "never"),
      h("td", {}, t.signed ? h("span", { class: "badge signed" }, "signed") : "no"))), `No tags yet. Push with: docker push ${location.host}/${full}:<tag>`));
    if (next || page > 0) {
      const prev = h("button", { type: "button", class: "secondary", disabled: page === 0 }, "Previous");
      const more = h("button", { type: "button", class: "secondary", disabled: !next }, "Next");
      prev.addEventListener("click", () => { page -= 1; load(); });
      more.addEventListener("click", () => { starts[page + 1] = next; page += 1; load(); });
      pager.append(prev, more);
    }
  }
  await load();
}

async function permissions(section, base) {
  try {
    // Organization repositories take team grants, user repositories user grants: one of the
    // two lists is refused (400), the other is the one that counts.
    const teams = await get(`${base}/teamAccess`).catch((e) => { if (e.status === 400) return { teamAccessList: [] }; throw e; });
    const users = await get(`${base}/userAccess`).catch((e) => { if (e.status === 400) return { userAccessList: [] }; throw e; });
    const rows = [
      ...teams.teamAccessList.map((g) => h("tr", {}, h("td", {}, "team"), h("td", {}, `${g.team.orgName}/${g.team.name}`), h("td", {}, g.accessLevel))),
      ...users.userAccessList.map((g) => h("tr", {}, h("td", {}, "user"), h("td", {}, g.user.name), h("td", {}, g.accessLevel))),
    ];
    section.append(table(["Kind", "Who", "Level"], rows, "No grants on this repository (owners and administrators have access)."));
    const isOrg = teams !== null;
    const form = h("form", { class: "row" },
      field(isOrg ? "Team (organization repositories) or user" : "User", "grantee"),
      field("Level", "accessLevel", { tag: "select", options: ["read-only", "read-write", "admin"] }),
      field("Kind", "kind", { tag: "select", options: ["team", "user"] }),
      h("button", { type: "submit" }, "Grant"), h("p", { class: "error", "data-error-for": "_form" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const d = new FormData(form);
      const path = d.get("kind") === "team" ? "teamAccess" : "userAccess";
      try {
        await call("PUT", `${base}/${path}/${enc(d.get("grantee"))}`, { accessLevel: d.get("accessLevel") });
        toast("Granted"); clear(section); section.append(h("h2", {}, "Permissions")); await permissions(section, base);
      } catch (e) { showErrors(form, e); }
    });
    section.append(form);
  } catch (e) {
    section.append(h("p", { class: "muted" }, e.status === 403 ? "Only repository administrators see the permissions." : e.message));
  }
}
