import { get, q } from "../api.js";
import { clear, field, h, table, when } from "../dom.js";

export async function render(main) {
  main.append(h("h1", {}, "Audit log"));
  const filter = h("form", { class: "toolbar" }, field("Actor", "actor"), h("button", { type: "submit" }, "Filter"));
  const holder = h("div");
  const pager = h("div", { class: "pager" });
  main.append(filter, holder, pager);
  const befores = [null];
  let page = 0;
  async function load() {
    clear(holder); clear(pager);
    const events = (await get(`/audit${q({ limit: 50, before: befores[page], actor: new FormData(filter).get("actor") })}`)).events;
    holder.append(table(["When", "Actor", "Action", "Target", "Outcome", "Address"], events.map((e) => h("tr", {},
      h("td", {}, when(e.at)), h("td", {}, e.actor), h("td", {}, e.action), h("td", {}, e.target), h("td", {}, e.outcome), h("td", {}, e.address)))));
    const prev = h("button", { type: "button", class: "secondary", disabled: page === 0 }, "Newer");
    const more = h("button", { type: "button", class: "secondary", disabled: events.length < 50 }, "Older");
    prev.addEventListener("click", () => { page -= 1; load(); });
    more.addEventListener("click", () => { befores[page + 1] = events[events.length - 1].id; page += 1; load(); });
    pager.append(prev, more);
  }
  filter.addEventListener("submit", (e) => { e.preventDefault(); befores.length = 1; page = 0; load(); });
  await load();
}
