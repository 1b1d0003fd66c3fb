// DOM helpers. User data only ever becomes text nodes or attribute values: never innerHTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  for (const child of children.flat()) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

export function clear(el) { el.replaceChildren(); return el; }

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0; let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

export function toast(message) {
  const box = document.getElementById("toast");
  const item = h("div", {}, message);
  box.append(item);
  setTimeout(() => item.remove(), 4000);
}

// Asks before a destructive action; resolves true when confirmed.
export function confirmAction(question, label = "Delete") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-label": "Confirm" });
    const done = (ok) => { dialog.close(); dialog.remove(); resolve(ok); };
    append(dialog, [
      h("p", {}, question),
      h("div", { class: "row" },
        h("button", { type: "button", class: "danger", "data-confirm": "yes", onclick: () => done(true) }, label),
        " ",
        h("button", { type: "button", class: "secondary", onclick: () => done(false) }, "Cancel")),
    ]);
    dialog.addEventListener("cancel", () => done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

// A labelled input with a place for its error message beside it.
export function field(label, name, attrs = {}) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  const control = attrs.tag === "select"
    ? h("select", { id, name, "aria-describedby": `${id}-err` }, (attrs.options || []).map((o) => h("option", { value: o, selected: o === attrs.value }, o)))
    : attrs.tag === "textarea"
      ? h("textarea", { id, name, rows: 3, "aria-describedby": `${id}-err` }, attrs.value || "")
      : h("input", { id, name, type: attrs.type || "text", value: attrs.value, required: attrs.required, autocomplete: attrs.autocomplete || "off", placeholder: attrs.placeholder, checked: attrs.checked, "aria-describedby": `${id}-err` });
  return h("div", { class: "field" }, h("label", { for: id }, label), control, h("span", { class: "error", id: `${id}-err`, "data-error-for": name }));
}

export function table(headers, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => (typeof x === "string" ? h("th", { scope: "col" }, x) : x)))),
    h("tbody", {}, rows)));
}
