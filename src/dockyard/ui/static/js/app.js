// The app shell: who is signed in, the navigation, and hash routes to pages.
import { ApiError, call, del, get, post, setCsrf } from "./api.js";
import { clear, h } from "./dom.js";
import * as dashboard from "./pages/dashboard.js";
import * as repositories from "./pages/repositories.js";
import * as repository from "./pages/repository.js";
import * as tag from "./pages/tag.js";
import * as settings from "./pages/settings.js";
import * as orgs from "./pages/orgs.js";
import * as users from "./pages/users.js";
import * as jobs from "./pages/jobs.js";
import * as audit from "./pages/audit.js";
import * as system from "./pages/system.js";
import * as signin from "./pages/signin.js";

export const state = { account: null };

const ROUTES = [
  [/^\/$/, dashboard.render],
  [/^\/repositories$/, repositories.render],
  [/^\/repositories\/([^/]+)\/([^/]+)$/, repository.render],
  [/^\/repositories\/([^/]+)\/([^/]+)\/settings$/, settings.render],
  [/^\/repositories\/([^/]+)\/([^/]+)\/tags\/([^/]+)$/, tag.render],
  [/^\/organizations$/, orgs.renderList],
  [/^\/organizations\/([^/]+)$/, orgs.renderOrg],
  [/^\/organizations\/([^/]+)\/teams\/([^/]+)$/, orgs.renderTeam],
  [/^\/users$/, users.renderList, true],
  [/^\/users\/([^/]+)$/, users.renderUser],
  [/^\/jobs$/, jobs.render, true],
  [/^\/audit$/, audit.render, true],
  [/^\/system$/, system.render, true],
];

function navigation() {
  const nav = document.getElementById("nav");
  clear(nav);
  if (!state.account) return;
  const links = [["#/", "Dashboard"], ["#/repositories", "Repositories"], ["#/organizations", "Organizations"]];
  if (state.account.isAdmin) links.push(["#/users", "Users"], ["#/jobs", "Jobs"], ["#/audit", "Audit log"], ["#/system", "System"]);
  else links.push([`#/users/${encodeURIComponent(state.account.name)}`, "My account"]);
  const here = location.hash || "#/";
  for (const [href, text] of links) {
    const current = href === "#/" ? here === "#/" : here.startsWith(href);
    nav.append(h("a", { href, "aria-current": current ? "page" : null, "data-nav": text }, text));
  }
  nav.append(h("span", { class: "spacer" }));
  nav.append(h("span", { "data-user": "" }, state.account.name));
  nav.append(h("a", { href: "/api/v0/docs" }, "API"));
  nav.append(h("button", { type: "button", id: "sign-out", onclick: signOut }, "Sign out"));
}

async function signOut() {
  try { await del("/session"); } catch { /* already ended */ }
  state.account = null;
  setCsrf(null);
  location.hash = "#/signin";
}

export async function signedIn(session) {
  state.account = session.account;
  setCsrf(session.csrfToken);
}

// Each route renders into a fresh <main>: a slower render of an earlier route
// keeps writing into its own, detached element and can never mix with this one.
function freshMain() {
  const old = document.getElementById("main");
  const main = old.cloneNode(false);
  old.replaceWith(main);
  return main;
}

async function route() {
  const main = freshMain();
  const path = (location.hash || "#/").slice(1) || "/";
  if (path === "/signin" || !state.account) {
    if (path !== "/signin") sessionStorage.setItem("dockyard.next", location.hash || "#/");
    navigation();
    return signin.render(main, async (session) => {
      await signedIn(session);
      const next = sessionStorage.getItem("dockyard.next") || "#/";
      sessionStorage.removeItem("dockyard.next");
      const target = next === "#/signin" ? "#/" : next;
      // Setting the hash to what it already is fires no hashchange: route by hand.
      if (location.hash === target) route();
      else location.hash = target;
    });
  }
  navigation();
  for (const [pattern, render, adminOnly] of ROUTES) {
    const m = path.match(pattern);
    if (!m) continue;
    if (adminOnly && !state.account.isAdmin) {
      main.append(h("h1", {}, "Not allowed"), h("p", {}, "Only administrators may see this page."));
      return;
    }
    try {
      await render(main, ...m.slice(1).map(decodeURIComponent));
    } catch (e) {
      clear(main);
      main.append(h("h1", {}, e instanceof ApiError && e.status === 404 ? "Not found" : "Something went wrong"),
        h("p", { class: "error" }, e.message));
    }
    main.focus({ preventScroll: true });
    return;
  }
  main.append(h("h1", {}, "Not found"), h("p", {}, "No page at this address."), h("a", { href: "#/" }, "Dashboard"));
}

async function start() {
  const toggle = document.getElementById("menu-toggle");
  toggle.addEventListener("click", () => {
    const nav = document.getElementById("nav");
    nav.hidden = !nav.hidden;
    toggle.setAttribute("aria-expanded", String(!nav.hidden));
  });
  try {
    await signedIn(await call("GET", "/session"));
  } catch { state.account = null; }
  window.addEventListener("hashchange", route);
  window.addEventListener("dockyard:signed-out", () => { state.account = null; route(); });
  route();
}

export { get, post };
start();
