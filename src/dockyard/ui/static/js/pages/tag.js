import { enc, get } from "../api.js";
import { bytes, h, table, when } from "../dom.js";
import { pullLine } from "./repository.js";

export async function render(main, ns, name, reference) {
  const base = `/repositories/${enc(ns)}/${enc(name)}`;
  const m = await get(`${base}/manifests/${enc(reference)}`);
  const full = `${ns}/${name}`;
  main.append(h("p", {}, h("a", { href: `#/repositories/${enc(ns)}/${enc(name)}` }, `← ${full}`)));
  main.append(h("h1", {}, `${full}:${reference}`));
  main.append(pullLine(full, reference));
  main.append(h("dl", { class: "props card" },
    h("dt", {}, "Digest"), h("dd", { class: "mono", "data-digest": "" }, m.digest),
    h("dt", {}, "Media type"), h("dd", {}, m.mediaType),
    h("dt", {}, "Manifest size"), h("dd", {}, bytes(m.size)),
    h("dt", {}, "Total size"), h("dd", { "data-total": "" }, bytes(m.totalSize)),
    m.platforms.length ? [h("dt", {}, "Platforms"), h("dd", { "data-platforms": "" }, m.platforms.join(", "))] : null,
    m.config ? [h("dt", {}, "Platform"), h("dd", {}, `${m.config.os || "?"}/${m.config.architecture || "?"}`), h("dt", {}, "Created"), h("dd", {}, when(m.config.created))] : null));
  if (m.children.length) {
    main.append(h("h2", {}, "Images"), table(["Platform", "Digest", "Size"], m.children.map((c) => h("tr", {},
      h("td", {}, c.platform || "—"),
      h("td", { class: "mono" }, h("a", { href: `#/repositories/${enc(ns)}/${enc(name)}/tags/${enc(c.digest)}` }, c.digest)),
      h("td", {}, bytes(c.size))))));
  }
  if (m.layers.length) {
    main.append(h("h2", {}, "Layers"), table(["#", "Digest", "Size", "Media type"], m.layers.map((l, i) => h("tr", { "data-layer": "" },
      h("td", {}, i + 1), h("td", { class: "mono" }, l.digest), h("td", {}, bytes(l.size)), h("td", { class: "wide" }, l.mediaType)))));
  }
  const history = m.config?.history || [];
  if (history.length) {
    main.append(h("h2", {}, "History"), table(["Created", "Command"], history.map((x) => h("tr", {},
      h("td", {}, when(x.created)), h("td", { class: "mono" }, x.created_by || x.comment || (x.empty_layer ? "(no layer)" : ""))))));
  }
  main.append(h("h2", {}, "Referrers (signatures, SBOMs, attestations)"),
    table(["Artifact type", "Digest", "Size"], m.referrers.map((r) => h("tr", {},
      h("td", {}, r.artifactType || r.mediaType), h("td", { class: "mono" }, r.digest), h("td", {}, bytes(r.size)))), "Nothing refers to this manifest."));
  main.append(h("h2", {}, "Manifest"), h("pre", {}, JSON.stringify(m.manifest, null, 2)));
  if (m.config) main.append(h("h2", {}, "Config"), h("pre", {}, JSON.stringify(m.config, null, 2)));
}
