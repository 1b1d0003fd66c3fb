// Lists the API pages with pageSize/pageStart and X-Next-Page-Start: Previous/Next buttons.
import { call, q } from "./api.js";
import { clear, h } from "./dom.js";

// fetch(path) pages through `path` (a list endpoint) and hands each page's body to draw.
export function pagedList(holder, pager, path, params, draw) {
  const starts = [null];
  let page = 0;
  async function load() {
    clear(holder); clear(pager);
    const response = await call("GET", `${path}${q({ ...params, pageStart: starts[page] })}`, undefined, { raw: true });
    draw(await response.json());
    const next = response.headers.get("X-Next-Page-Start");
    if (next || page > 0) {
      const prev = h("button", { type: "button", class: "secondary", disabled: page === 0 }, "Previous");
      const more = h("button", { type: "button", class: "secondary", disabled: !next }, "Next");
      prev.addEventListener("click", () => { page -= 1; load(); });
      more.addEventListener("click", () => { starts[page + 1] = next; page += 1; load(); });
      pager.append(prev, more);
    }
  }
  return load;
}
