import { del, enc, get, post, put, showErrors } from "../api.js";
import { bytes, clear, confirmAction, field, h, table, toast, when } from "../dom.js";

export async function render(main, ns, name) {
  const full = `${ns}/${name}`;
  const base = `/repositories/${enc(ns)}/${enc(name)}`;
  main.append(h("p", {}, h("a", { href: `#/repositories/${enc(ns)}/${enc(name)}` }, `← ${full}`)));
  main.append(h("h1", {}, `Settings of ${full}`));
  const life = await get(`${base}/lifecycle`);
  const rule = life.pruneRules[0] || {};
  const form = h("form", { class: "card", id: "lifecycle" },
    h("h2", {}, "Lifecycle"),
    h("p", { class: "muted" }, `Stored: ${bytes(life.usageBytes)}`),
    h("div", { class: "field" }, h("label", {}, h("input", { type: "checkbox", name: "immutableTags", checked: life.immutableTags }), " Immutable tags (a tag cannot be moved or deleted)")),
    field("Quota in bytes (empty: none)", "quotaBytes", { type: "number", value: life.quotaBytes ?? "" }),
    field("Prune: tag pattern", "pattern", { value: rule.pattern || "" , placeholder: "e.g. pr-*" }),
    field("Prune: keep newest", "keep", { type: "number", value: rule.keep ?? "" }),
    field("Prune: delete after (days without a push)", "maxAgeDays", { type: "number", value: rule.maxAgeSeconds ? rule.maxAgeSeconds / 86400 : "" }),
    h("p", { class: "error", "data-error-for": "_form" }),
    h("button", { type: "submit" }, "Save lifecycle"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const d = new FormData(form);
    const body = { immutableTags: d.get("immutableTags") !== null, pruneRules: [] };
    if (d.get("quotaBytes")) body.quotaBytes = Number(d.get("quotaBytes"));
    if (life.untaggedRetentionSeconds !== null) body.untaggedRetentionSeconds = life.untaggedRetentionSeconds;
    if (d.get("pattern")) {
      const r = { pattern: d.get("pattern") };
      if (d.get("keep")) r.keep = Number(d.get("keep"));
      if (d.get("maxAgeDays")) r.maxAgeSeconds = Number(d.get("maxAgeDays")) * 86400;
      body.pruneRules.push(r);
    }
    try { await put(`${base}/lifecycle`, body); toast("Lifecycle saved"); } catch (e) { showErrors(form, e); }
  });
  main.append(form);
  const hooks = h("section", { class: "card", id: "webhooks" });
  main.append(hooks);
  await webhooks(hooks, full);
}

async function webhooks(section, full) {
  clear(section);
  section.append(h("h2", {}, "Webhooks"));
  const all = (await get("/webhooks")).webhooks.filter((w) => w.scope === "repository" && w.target === full);
  section.append(table(["URL", "Events", "Active", "Last success", ""], all.map((w) => {
    const remove = h("button", { type: "button", class: "danger" }, "Delete");
    remove.addEventListener("click", async () => {
      if (!(await confirmAction(`Delete the webhook to ${w.url}?`))) return;
      await del(`/webhooks/${w.id}`); webhooks(section, full);
    });
    const show = h("button", { type: "button", class: "secondary" }, "Deliveries");
    show.addEventListener("click", () => deliveries(section, w));
    return h("tr", { "data-webhook": w.url }, h("td", {}, w.url), h("td", {}, w.events.join(", ")), h("td", {}, w.active ? "yes" : "no"),
      h("td", {}, when(w.lastSuccessfulAt)), h("td", {}, show, " ", remove));
  }), "No webhooks for this repository."));
  const form = h("form", { id: "new-webhook" },
    h("h3", {}, "Add a webhook"),
    field("URL", "url", { required: true, placeholder: "https://ci.example.com/hook" }),
    field("Events (comma-separated)", "events", { value: "tag.push" }),
    h("p", { class: "error", "data-error-for": "_form" }),
    h("button", { type: "submit" }, "Add webhook"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const d = new FormData(form);
    const events = String(d.get("events") || "").split(",").map((s) => s.trim()).filter(Boolean);
    try {
      const created = await post("/webhooks", { scope: "repository", target: full, url: d.get("url"), events });
      toast("Webhook added");
      await webhooks(section, full);
      section.append(h("p", { class: "ok" }, "Its signing secret (shown once): ", h("code", {}, created.secret)));
    } catch (e) { showErrors(form, e); }
  });
  section.append(form);
}

async function deliveries(section, hook) {
  const list = await get(`/webhooks/${hook.id}/deliveries`);
  const box = h("div", { class: "card" }, h("h3", {}, `Deliveries to ${hook.url}`),
    table(["When", "Event", "Status", "Response", "Error"], list.deliveries.map((x) => h("tr", {},
      h("td", {}, when(x.createdAt)), h("td", {}, x.event), h("td", {}, `${x.status} (${x.attempts}/${x.maxAttempts})`),
      h("td", {}, x.responseStatus ?? "—"), h("td", {}, x.error || ""))), "No deliveries yet."));
  section.append(box);
}
