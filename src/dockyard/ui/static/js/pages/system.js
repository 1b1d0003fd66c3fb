// System settings (administrators): how the server is set up, read-only, secrets never shown.
// GC schedules are changed on the jobs page (the /crons API).
import { get } from "../api.js";
import { h, table } from "../dom.js";

function text(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function pairs(rows) {
  return table(["Setting", "Value"], rows.map(([name, value]) => h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, text(value)))));
}

export async function render(main) {
  const s = await get("/system");
  main.append(h("h1", {}, "System"));
  main.append(
    h("section", { class: "card", id: "system-general" }, h("h2", {}, "Server"), pairs([
      ["Version", s.version],
      ["Metadata database", s.database],
      ["HTTPS served by Dockyard", s.tls ? "yes" : "no (plain HTTP, e.g. behind nginx)"],
      ["Hostnames", s.hostnames.join(", ")],
      ["Content trust", s.contentTrust ? "on" : "off"],
      ["Deletes allowed", s.deleteEnabled ? "yes" : "no"],
      ["Jobs run in this server", s.jobsInServer ? "yes" : "no (dockyard worker processes)"],
    ])),
    h("section", { class: "card", id: "system-storage" }, h("h2", {}, "Storage"), pairs([
      ["Driver", s.storage.driver],
      ...Object.entries(s.storage.params).map(([k, v]) => [k, v]),
    ])),
    h("section", { class: "card", id: "system-auth" }, h("h2", {}, "Sign-in"), pairs([
      ["Providers", s.auth.providers.join(", ")],
      ...(s.auth.ldap ? Object.entries(s.auth.ldap).map(([k, v]) => [`ldap ${k}`, v]) : []),
      ["Token lifetime (s)", s.auth.tokenTtlSeconds],
      ["Session idle limit (s)", s.auth.sessionIdleSeconds],
      ["Session limit (s)", s.auth.sessionMaxSeconds],
      ["Create repository on push", s.auth.createRepositoryOnPush ? "yes" : "no"],
    ])),
    h("section", { class: "card", id: "system-gc" }, h("h2", {}, "Garbage collection schedules"),
      table(["Name", "Schedule (UTC)", "Enabled", "Parameters"], s.gcSchedules.map((c) => h("tr", {},
        h("td", {}, c.name), h("td", {}, c.schedule), h("td", {}, c.enabled ? "yes" : "no"), h("td", {}, text(c.parameters)))),
        "No GC schedule: run GC from the jobs page, or add one there."),
      h("p", {}, h("a", { href: "#/jobs" }, "Jobs and schedules"))),
  );
}
