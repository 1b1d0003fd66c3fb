"""The web UI in a real browser: the whole admin scenario, what non-admins see, XSS and CSRF."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.api.conftest import ADMIN, Api, password_of
from tests.conftest import ADMIN_PASSWORD, RunningServer
from tests.integration.clients import Clients, Platform, build_multiarch
from tests.ui.conftest import Dialogs, Shots, go, sign_in

PLATFORMS = [Platform("amd64"), Platform("arm64"), Platform("arm", variant="v7")]


def test_shell_has_a_strict_content_security_policy(api: Api) -> None:
    for path in ("/", "/ui/js/app.js", "/ui/app.css"):
        r = api.registry.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
    assert (
        api.registry.get("/ui/js/app.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    # the static files hold no inline code the CSP would block
    static = Path(__file__).resolve().parents[2] / "src" / "dockyard" / "ui" / "static"
    html = (static / "index.html").read_text()
    assert "<script>" not in html and "style=" not in html
    for js in static.rglob("*.js"):
        assert not re.search(r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b", js.read_text()), js


def test_admin_scenario(page: Page, api: Api, ui_server: RunningServer, shots: Shots, tmp_path: Path) -> None:
    sign_in(page)
    shots(page, "01-dashboard-empty")

    # an organization and a team
    go(page, "/organizations")
    form = page.locator("#new-organization")
    form.get_by_label("Name", exact=True).fill("Bad Name!")
    form.get_by_role("button", name="Create organization").click()
    expect(form.locator("[data-error-for='name']")).to_contain_text("invalid account name")
    form.get_by_label("Name", exact=True).fill("acme")
    form.get_by_role("button", name="Create organization").click()
    expect(page.locator("main h1")).to_have_text("acme")
    page.locator("#new-team").get_by_label("Name", exact=True).fill("devs")
    page.locator("#new-team").get_by_role("button", name="Create team").click()
    expect(page.locator("main h1")).to_have_text("acme / devs")
    page.locator("#add-member").get_by_label("User").fill("admin")
    page.locator("#add-member").get_by_role("button", name="Add member").click()
    expect(page.locator("[data-member='admin']")).to_be_visible()
    shots(page, "02-team")

    # a repository
    go(page, "/repositories")
    form = page.locator("#new-repository")
    form.get_by_label("Namespace (your user or an organization)").fill("acme")
    form.get_by_label("Name", exact=True).fill("app")
    form.get_by_label("Description").fill("The acme app")
    form.get_by_role("button", name="Create repository").click()
    expect(page.locator("main h1")).to_contain_text("acme/app")
    expect(page.locator("[data-visibility]")).to_have_text("private")

    # push a multi-arch image with skopeo; its tag, size and platforms appear
    clients = Clients(ui_server, tmp_path / "clients")
    idx = build_multiarch(tmp_path / "src", "v1", PLATFORMS, nonce=os.urandom(8).hex())
    creds = f"admin:{ADMIN_PASSWORD}"
    pushed = clients.push(
        f"oci:{tmp_path / 'src'}:v1", "acme/app", "v1", "--all", "--preserve-digests", "--dest-creds", creds
    )
    assert pushed == idx.digest
    page.reload()
    row = page.locator("[data-tag='v1']")
    expect(row.locator("[data-platforms]")).to_have_text("linux/amd64, linux/arm64, linux/arm/v7")
    expect(row.locator("[data-size]")).to_have_text(re.compile(r"\d+(\.\d)? (B|KB|MB)"))
    expect(row.locator("[data-last-pulled]")).to_have_text("never")
    expect(row.locator("[data-pushed]")).to_contain_text("by admin")
    # the pull line names the first tag, not a ":latest" the repository may not have
    expect(page.locator("[data-pull]")).to_have_text(f"docker pull {ui_server.host}/acme/app:v1")
    shots(page, "03-repository")

    # the tag page: children, pull line; then one image's layers, config and history
    row.get_by_role("link", name="v1").click()
    expect(page.locator("[data-digest]")).to_have_text(idx.digest)
    expect(page.locator("[data-pull]")).to_have_text(f"docker pull {ui_server.host}/acme/app:v1")
    shots(page, "04-tag-index")
    page.get_by_role("link", name=idx.children[0].digest).click()
    expect(page.locator("[data-layer]")).to_have_count(2)
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    shots(page, "05-tag-image")

    # visibility
    go(page, "/repositories/acme/app")
    edit = page.locator("#repository-edit")
    edit.get_by_label("Visibility").select_option("public")
    edit.get_by_role("button", name="Save").click()
    expect(page.locator("[data-visibility]")).to_have_text("public")
    assert api.ok("GET", "/repositories/acme/app")["visibility"] == "public"

    # settings: lifecycle and a webhook
    page.get_by_role("link", name="Settings, lifecycle and webhooks").click()
    lifecycle = page.locator("#lifecycle")
    lifecycle.get_by_label("Immutable tags").check()
    lifecycle.get_by_role("button", name="Save lifecycle").click()
    expect(page.locator("#toast")).to_contain_text("Lifecycle saved")
    assert api.ok("GET", "/repositories/acme/app/lifecycle")["immutableTags"] is True
    hook = page.locator("#new-webhook")
    hook.get_by_label("URL").fill("http://127.0.0.1:9/hook")
    hook.get_by_role("button", name="Add webhook").click()
    expect(page.locator("[data-webhook='http://127.0.0.1:9/hook']")).to_be_visible()
    page.locator("[data-webhook]").get_by_role("button", name="Deliveries").click()
    expect(page.get_by_role("heading", name=re.compile("Deliveries to"))).to_be_visible()
    shots(page, "06-settings")

    # jobs: run GC (asks first)
    go(page, "/jobs")
    page.get_by_role("button", name="Run GC").click()
    page.locator("dialog [data-confirm]").click()
    expect(page.locator("[data-job='gc']").first).to_be_visible()
    shots(page, "07-jobs")

    # the other pages render
    go(page, "/")
    expect(page.locator("[data-stat='repositories']")).to_have_text("1")
    expect(page.locator("[data-chart='pushes'] svg rect.bar")).to_have_count(30)
    expect(page.locator("[data-chart='pulls'] svg rect.bar")).to_have_count(30)
    expect(page.locator("[data-stat='pulls']")).to_have_text(re.compile(r"^\d+$"))
    shots(page, "08-dashboard")
    go(page, "/repositories")
    expect(page.locator("[data-repo='acme/app']")).to_be_visible()
    shots(page, "09-repositories")
    go(page, "/users")
    shots(page, "10-users")
    go(page, "/users/admin")
    expect(page.locator("#tokens")).to_be_visible()
    go(page, "/audit")
    expect(page.get_by_role("cell", name="repository.create").first).to_be_visible()
    shots(page, "11-audit")

    # phone width: the menu folds away and still works
    page.set_viewport_size({"width": 390, "height": 844})
    go(page, "/repositories/acme/app")
    expect(page.locator("#nav")).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(page.locator("#nav")).to_be_visible()
    shots(page, "12-phone-repository")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.request.get("/api/v0/session").status == 401


def test_non_admin_sees_no_admin_pages(page: Page, api: Api, shots: Shots) -> None:
    api.user("carol")
    sign_in(page, "carol", password_of("carol"))
    nav = page.locator("#nav")
    expect(nav.get_by_role("link", name="Repositories")).to_be_visible()
    for hidden in ("Users", "Jobs", "Audit log", "System"):
        expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
    go(page, "/jobs")
    expect(page.locator("main h1")).to_have_text("Not allowed")
    shots(page, "13-non-admin")
    for path in ("/audit", "/jobs", "/crons", "/system"):
        assert page.request.get(f"/api/v0{path}").status == 403, path


def test_system_page_shows_the_set_up_without_secrets(page: Page, api: Api, shots: Shots) -> None:
    sign_in(page)
    page.locator("#nav").get_by_role("link", name="System").click()
    expect(page.locator("main h1")).to_have_text("System")
    storage = page.locator("#system-storage")
    expect(storage.get_by_role("cell", name="filesystem")).to_be_visible()
    expect(page.locator("#system-auth").get_by_role("cell", name="local", exact=True)).to_be_visible()
    expect(page.locator("#system-general").get_by_role("cell", name="sqlite")).to_be_visible()
    shots(page, "15-system")


def test_organization_wide_grants(page: Page, api: Api) -> None:
    api.org("nsorg")
    api.team("nsorg", "devs")
    sign_in(page)
    go(page, "/organizations/nsorg")
    form = page.locator("#grant-namespace")
    form.get_by_label("Team").select_option("devs")
    form.get_by_label("Level").select_option("read-write")
    form.get_by_role("button", name="Grant").click()
    row = page.locator("tr[data-grant='devs']")
    expect(row).to_contain_text("read-write")
    grants = page.request.get("/api/v0/repositoryNamespaces/nsorg/teamAccess").json()["teamAccessList"]
    assert [(g["team"]["name"], g["accessLevel"]) for g in grants] == [("devs", "read-write")]
    row.get_by_role("button", name="Revoke").click()
    page.locator("dialog [data-confirm]").click()
    expect(page.locator("tr[data-grant='devs']")).to_have_count(0)
    go(page, "/organizations")
    expect(page.locator("tr[data-org='nsorg']")).to_be_visible()


def test_gc_schedules_from_the_jobs_page(page: Page, shots: Shots) -> None:
    sign_in(page)
    go(page, "/jobs")
    form = page.locator("#new-schedule")
    form.get_by_label("Name").fill("nightly-gc")
    form.get_by_label("Schedule (UTC", exact=False).fill("0 3 * *")
    form.get_by_role("button", name="Add schedule").click()
    expect(form.locator("[data-error-for='_form']")).to_contain_text("has 4 fields")
    form.get_by_label("Schedule (UTC", exact=False).fill("0 3 * * *")
    form.get_by_role("button", name="Add schedule").click()
    row = page.locator("tr[data-cron='nightly-gc']")
    expect(row).to_contain_text("0 3 * * *")
    expect(row).to_contain_text("yes")
    row.get_by_role("button", name="Disable").click()
    expect(page.locator("tr[data-cron='nightly-gc']")).to_contain_text("no")
    shots(page, "17-schedules")
    assert page.request.get("/api/v0/crons/nightly-gc").json()["enabled"] is False
    page.locator("tr[data-cron='nightly-gc']").get_by_role("button", name="Delete").click()
    page.locator("dialog [data-confirm]").click()
    expect(page.locator("tr[data-cron='nightly-gc']")).to_have_count(0)
    assert page.request.get("/api/v0/crons/nightly-gc").status == 404


def test_api_docs_render_from_this_server_under_a_csp(page: Page, ui_server: RunningServer, shots: Shots) -> None:
    """Swagger UI's files come from Dockyard itself (an offline site has no CDN)."""
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(ui_server.url) else outside.append(r.url))
    response = page.goto("/api/v0/docs")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Dockyard API")
    expect(page.locator(".opblock-tag", has_text="jobs")).to_be_visible()
    shots(page, "16-api-docs")
    assert outside == [], outside


def test_xss_in_a_description_renders_as_text(page: Page, api: Api, dialogs: Dialogs, shots: Shots) -> None:
    payload = '<img src=x onerror=alert(1)><script>alert(2)</script>"><svg onload=alert(3)>'
    api.repo("admin", "xss")
    api.ok("PATCH", "/repositories/admin/xss", {"shortDescription": payload})
    sign_in(page)
    go(page, "/repositories/admin/xss")
    expect(page.locator("[data-description]")).to_have_text(payload)
    go(page, "/repositories")
    expect(page.locator("[data-repo='admin/xss'] td").nth(2)).to_have_text(payload)
    expect(page.locator("main img")).to_have_count(0)
    page.wait_for_timeout(300)
    assert dialogs.seen == []
    shots(page, "14-xss-as-text")


def test_overlapping_navigations_show_one_page(page: Page, api: Api) -> None:
    # Two routes in flight at once (a hash changed twice, a sign-in that also routed)
    # once rendered both pages into one <main>; only the last navigation may show.
    api.repo("admin", "first")
    api.repo("admin", "second")
    sign_in(page)
    page.evaluate("""() => {
        location.hash = "#/repositories/admin/first";
        window.dispatchEvent(new HashChangeEvent("hashchange"));
        window.dispatchEvent(new HashChangeEvent("hashchange"));
    }""")
    expect(page.locator("main h1")).to_have_text(re.compile("^admin/first"))
    page.evaluate("""() => {
        location.hash = "#/repositories/admin/second";
        window.dispatchEvent(new HashChangeEvent("hashchange"));
    }""")
    expect(page.locator("main h1")).to_have_text(re.compile("^admin/second"))
    page.wait_for_timeout(300)
    expect(page.locator("main h1")).to_have_count(1)
    expect(page.locator("main")).to_have_count(1)


def test_cookie_authenticated_post_without_csrf_token_is_refused(page: Page, api: Api) -> None:
    sign_in(page)
    r = page.request.post(
        "/api/v0/accounts",
        data=json.dumps({"type": "organization", "name": "csrf"}),
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 403 and "X-CSRF-Token" in r.json()["errors"][0]["message"]
    assert api.call("GET", "/accounts/csrf", ADMIN).status_code == 404
