import { del, enc, get, patch, post, showErrors } from "../api.js";
import { clear, confirmAction, field, h, table, toast, when } from "../dom.js";

export async function render(main) {
  main.append(h("h1", {}, "Jobs"));
  const run = h("button", { type: "button", id: "run-gc" }, "Run GC");
  run.addEventListener("click", async () => {
    if (!(await confirmAction("Run garbage collection now? Pushes and pulls keep working.", "Run GC"))) return;
    try { const job = await post("/jobs", { action: "gc" }); toast(`GC queued as job ${job.id}`); load(); } catch (e) { toast(e.message); }
  });
  const holder = h("div", { "aria-live": "polite" });
  main.append(h("div", { class: "toolbar" }, run, h("button", { type: "button", class: "secondary", onclick: () => load() }, "Refresh")), holder);
  async function load() {
    clear(holder);
    const jobs = (await get("/jobs?pageSize=50")).jobs;
    holder.append(h("h2", {}, "Jobs"), table(["#", "Action", "Status", "Created", "Finished", ""], jobs.map((j) => {
      const logs = h("button", { type: "button", class: "secondary" }, "Log");
      logs.addEventListener("click", () => showLog(holder, j));
      const cancel = ["waiting", "running"].includes(j.status) ? h("button", { type: "button", class: "danger" }, "Cancel") : null;
      cancel?.addEventListener("click", async () => {
        if (await confirmAction(`Cancel job ${j.id}?`, "Cancel job")) { await del(`/jobs/${j.id}`); load(); }
      });
      return h("tr", { "data-job": j.action, "data-status": j.status }, h("td", {}, j.id), h("td", {}, j.action), h("td", {}, j.status),
        h("td", {}, when(j.createdAt)), h("td", {}, when(j.finishedAt)), h("td", {}, logs, " ", cancel));
    }), "No jobs yet."));
    const crons = (await get("/crons")).crons;
    holder.append(h("h2", {}, "Scheduled"), table(["Name", "Action", "Schedule (UTC)", "Enabled", "Next run", ""], crons.map((c) => {
      const toggle = h("button", { type: "button", class: "secondary" }, c.enabled ? "Disable" : "Enable");
      toggle.addEventListener("click", async () => {
        try { await patch(`/crons/${enc(c.name)}`, { enabled: !c.enabled }); load(); } catch (e) { toast(e.message); }
      });
      const remove = h("button", { type: "button", class: "danger" }, "Delete");
      remove.addEventListener("click", async () => {
        if (await confirmAction(`Delete the schedule ${c.name}? Jobs it queued stay.`)) { await del(`/crons/${enc(c.name)}`); load(); }
      });
      return h("tr", { "data-cron": c.name }, h("td", {}, c.name), h("td", {}, c.action), h("td", { class: "mono" }, c.schedule),
        h("td", {}, c.enabled ? "yes" : "no"), h("td", {}, when(c.nextRun)), h("td", {}, toggle, " ", remove));
    })), scheduleForm(load));
  }
  await load();
}

async function showLog(holder, job) {
  const lines = (await get(`/jobs/${job.id}/logs`)).logs;
  holder.prepend(h("section", { class: "card" }, h("h2", {}, `Log of job ${job.id} (${job.action})`),
    h("pre", {}, lines.map((l) => `${l.at} ${l.level} ${l.message}`).join("\n") || "(empty)")));
}

// A new cron schedule: 5 fields in UTC; errors (a bad expression, a taken name) shown beside the field.
function scheduleForm(reload) {
  const form = h("form", { class: "card", id: "new-schedule" }, h("h2", {}, "New schedule"),
    field("Name", "name", { required: true, placeholder: "nightly-gc" }),
    field("Action", "action", { tag: "select", options: ["gc", "prune", "upload-cleanup"], value: "gc" }),
    field("Schedule (UTC: minute hour day month weekday)", "schedule", { required: true, placeholder: "0 3 * * *" }),
    h("span", { class: "error", "data-error-for": "_form" }),
    h("button", { type: "submit" }, "Add schedule"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    try {
      await post("/crons", { name: data.get("name"), action: data.get("action"), schedule: data.get("schedule") });
      toast(`Schedule ${data.get("name")} added`);
      reload();
    } catch (err) { showErrors(form, err); }
  });
  return form;
}
