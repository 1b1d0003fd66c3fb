import { get } from "../api.js";
import { bytes, h, svg } from "../dom.js";

// Bars of a daily series, drawn as SVG (no chart library, nothing inline for the CSP).
export function barChart(series, label) {
  const width = 600, height = 160, pad = 24;
  const max = Math.max(1, ...series.map((d) => d.count));
  const step = (width - pad * 2) / Math.max(1, series.length);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  chart.append(svg("line", { class: "axis", x1: pad, y1: height - pad, x2: width - pad, y2: height - pad }));
  series.forEach((d, i) => {
    const bh = ((height - pad * 2) * d.count) / max;
    const bar = svg("rect", { class: "bar", x: pad + i * step + 1, y: height - pad - bh, width: Math.max(1, step - 2), height: bh });
    bar.append(svg("title", {}, `${d.day}: ${d.count}`));
    chart.append(bar);
  });
  chart.append(svg("text", { x: pad, y: height - 6 }, series.length ? series[0].day : ""));
  chart.append(svg("text", { x: width - pad, y: height - 6, "text-anchor": "end" }, series.length ? series[series.length - 1].day : ""));
  chart.append(svg("text", { x: pad, y: pad - 8 }, `max ${max}`));
  return h("div", { class: "chart" }, chart);
}

export async function render(main) {
  main.append(h("h1", {}, "Dashboard"));
  const stats = await get("/stats?days=30");
  const total = stats.pushes.reduce((a, d) => a + d.count, 0);
  const pulled = stats.pulls.reduce((a, d) => a + d.count, 0);
  main.append(h("div", { class: "grid" },
    h("div", { class: "card" }, h("div", { class: "muted" }, "Repositories"), h("div", { class: "figure", "data-stat": "repositories" }, stats.repositories)),
    h("div", { class: "card" }, h("div", { class: "muted" }, "Storage used"), h("div", { class: "figure", "data-stat": "storage" }, bytes(stats.storageBytes))),
    h("div", { class: "card" }, h("div", { class: "muted" }, "Pushes, last 30 days"), h("div", { class: "figure", "data-stat": "pushes" }, total)),
    h("div", { class: "card" }, h("div", { class: "muted" }, "Pulls, last 30 days"), h("div", { class: "figure", "data-stat": "pulls" }, pulled))));
  main.append(h("div", { class: "grid" },
    h("section", { class: "card", "data-chart": "pushes" }, h("h2", {}, "Pushes per day"), barChart(stats.pushes, "Manifests pushed per day over the last 30 days")),
    h("section", { class: "card", "data-chart": "pulls" }, h("h2", {}, "Pulls per day"), barChart(stats.pulls, "Manifests pulled per day over the last 30 days"))));
  main.append(h("p", {}, h("a", { href: "#/repositories" }, "Browse repositories →")));
}
