"""The API as a whole: OpenAPI document and docs page, authentication, the error envelope,
the audit log, and the API's absence when auth is off."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import ADMIN, Api, creds, errors_of, start_api_server
from tests.conftest import RunningServer

PATHS = {
    "/accounts": {"get", "post"},
    "/accounts/{name}": {"get", "patch", "delete"},
    "/accounts/{name}/changePassword": {"post"},
    "/accounts/{name}/activate": {"put"},
    "/accounts/{name}/deactivate": {"put"},
    "/accounts/{name}/organizations": {"get"},
    "/accounts/{org}/teams": {"get", "post"},
    "/accounts/{org}/teams/{team}": {"get", "patch", "delete"},
    "/accounts/{org}/teams/{team}/members": {"get"},
    "/accounts/{org}/teams/{team}/members/{user}": {"get", "put", "delete"},
    "/accounts/{org}/teams/{team}/repositoryAccess": {"get"},
    "/ldapSync": {"post"},
    "/repositories": {"get"},
    "/repositories/{namespace}": {"get", "post"},
    "/repositories/{namespace}/{repo}": {"get", "patch", "delete"},
    "/repositories/{namespace}/{repo}/tags": {"get"},
    "/repositories/{namespace}/{repo}/teamAccess": {"get"},
    "/repositories/{namespace}/{repo}/teamAccess/{team}": {"get", "put", "delete"},
    "/repositories/{namespace}/{repo}/userAccess": {"get"},
    "/repositories/{namespace}/{repo}/userAccess/{user}": {"get", "put", "delete"},
    "/repositoryNamespaces/{namespace}/teamAccess": {"get"},
    "/repositoryNamespaces/{namespace}/teamAccess/{team}": {"get", "put", "delete"},
    "/accounts/{name}/tokens": {"get", "post"},
    "/accounts/{name}/tokens/{token_id}": {"delete"},
    "/audit": {"get"},
    "/repositories/{namespace}/{repo}/lifecycle": {"get", "put"},
    "/namespaces/{namespace}/lifecycle": {"get", "put"},
    "/repositories/{namespace}/{repo}/signers": {"get", "post"},
    "/repositories/{namespace}/{repo}/signers/{name}": {"delete"},
    "/repositories/{namespace}/{repo}/manifests/{digest}/signatures": {"get"},
    "/webhooks": {"get", "post"},
    "/webhooks/{webhook_id}": {"get", "patch", "delete"},
    "/webhooks/{webhook_id}/deliveries": {"get"},
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": {"post"},
    "/webhooks/{webhook_id}/test": {"post"},
    "/jobs": {"get", "post"},
    "/jobs/actions": {"get"},
    "/jobs/{job_id}": {"get", "delete"},
    "/jobs/{job_id}/logs": {"get"},
    "/crons": {"get", "post"},
    "/crons/{name}": {"get", "patch", "delete"},
    "/system": {"get"},
    "/session": {"get", "post", "delete"},
    "/stats": {"get"},
    "/repositories/{namespace}/{repo}/manifests/{reference}": {"get"},
}


def test_openapi_document_lists_every_path(api: Api) -> None:
    r = api.call("GET", "/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"] == "Dockyard API"
    assert {p: set(ops) for p, ops in doc["paths"].items()} == PATHS
    assert doc["servers"] == [{"url": "/api/v0"}]
    assert doc["components"]["securitySchemes"]["HTTPBasic"]["scheme"] == "basic"
    schemas = doc["components"]["schemas"]
    assert {"Account", "NewAccount", "Team", "Repository", "TeamAccess", "Token", "AuditEvent", "ErrorBody"} <= set(
        schemas
    )
    assert set(schemas["AccessBody"]["properties"]) == {"accessLevel"}
    assert schemas["AccessBody"]["properties"]["accessLevel"]["enum"] == ["read-only", "read-write", "admin"]
    put = doc["paths"]["/repositories/{namespace}/{repo}/teamAccess/{team}"]["put"]
    for status in ("401", "403", "404", "422"):
        assert put["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_docs_page_points_at_the_document(api: Api) -> None:
    r = api.call("GET", "/docs")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/api/v0/openapi.json" in r.text


def test_authentication_failures(api: Api) -> None:
    r = api.call("GET", "/accounts", ("admin", "wrong-password"))
    assert r.status_code == 401 and errors_of(r) == ["UNAUTHORIZED"]
    assert r.headers["www-authenticate"] == 'Basic realm="dockyard"'
    assert api.call("GET", "/accounts", ("nobody", "whatever")).status_code == 401
    r = api.call("GET", "/accounts", headers={"Authorization": "Basic !!!not-base64"})
    assert r.status_code == 401 and errors_of(r) == ["UNAUTHORIZED"]
    r = api.call("GET", "/accounts", headers={"Authorization": "Bearer abc"})
    assert r.status_code == 401 and "Basic" in r.json()["errors"][0]["message"]


def test_too_many_failed_logins_is_429(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_api_server(tmp_path_factory, DOCKYARD_AUTH__FAILED_LOGIN_LIMIT="2")
    try:
        with httpx.Client(base_url=f"{server.url}/api/v0") as c:
            for _ in range(2):
                assert c.get("/accounts", auth=("admin", "wrong-password")).status_code == 401
            r = c.get("/accounts", auth=("admin", "wrong-password"))
            assert r.status_code == 429 and errors_of(r) == ["TOO_MANY_REQUESTS"]
            assert int(r.headers["retry-after"]) > 0
    finally:
        server.stop()


def test_malformed_bodies_get_the_envelope(api: Api) -> None:
    def post(content: bytes, content_type: str = "application/json") -> httpx.Response:
        return api.call("POST", "/accounts", ADMIN, content=content, headers={"Content-Type": content_type})

    r = post(b"{not json")
    assert r.status_code == 400 and errors_of(r) == ["BAD_REQUEST"] and "not valid JSON" in r.text
    r = post(b"[1, 2]")
    assert r.status_code == 400 and errors_of(r) == ["BAD_REQUEST"]
    r = post(b'{"type": "user"}', "text/plain")
    assert r.status_code in (400, 422) and errors_of(r)
    r = api.call("POST", "/accounts", ADMIN)
    assert r.status_code == 422 and r.json()["errors"][0]["message"] == "a JSON request body is required"
    r = api.call("POST", "/accounts", ADMIN, {"type": "user", "name": 7, "password": ["x"], "shoeSize": 9})
    assert r.status_code == 422 and set(errors_of(r)) == {"INVALID_INPUT"}
    messages = [e["message"] for e in r.json()["errors"]]
    assert "name: Input should be a valid string" in messages
    assert any(m.startswith("password: ") for m in messages)
    assert "shoeSize: Extra inputs are not permitted" in messages
    r = api.call("GET", "/audit?limit=many", ADMIN)
    assert r.status_code == 422 and r.json()["errors"][0]["message"].startswith("limit: ")


def test_unknown_paths_and_methods_get_the_envelope(api: Api) -> None:
    r = api.call("GET", "/no/such/thing", ADMIN)
    assert r.status_code == 404 and errors_of(r) == ["NOT_FOUND"]
    r = api.call("DELETE", "/audit", ADMIN)
    assert r.status_code == 405 and errors_of(r) == ["METHOD_NOT_ALLOWED"]


def test_audit_is_for_admins_and_pages_back(api: Api) -> None:
    api.user("auditee")
    assert api.call("GET", "/audit", creds("auditee")).status_code == 403
    assert api.call("GET", "/audit").status_code == 401
    api.ok("PATCH", "/accounts/auditee", {"fullName": "A"}, creds("auditee"))
    events = api.ok("GET", "/audit?limit=1000")["events"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True)
    assert set(events[0]) == {"id", "at", "actor", "action", "target", "outcome", "address", "detail"}
    kinds = {(e["actor"], e["action"], e["target"]) for e in events}
    assert ("admin", "account.create", "auditee") in kinds
    assert ("auditee", "account.update", "auditee") in kinds
    assert ("auditee", "login", "auditee") in kinds

    first = api.ok("GET", "/audit?limit=2")["events"]
    second = api.ok("GET", f"/audit?limit=2&before={first[-1]['id']}")["events"]
    assert len(first) == len(second) == 2 and second[0]["id"] < first[-1]["id"]
    only = api.ok("GET", "/audit?actor=auditee&limit=1000")["events"]
    assert only and {e["actor"] for e in only} == {"auditee"}


def test_no_api_when_auth_is_off(server: RunningServer) -> None:
    """Without accounts there is nothing to administer: /api/v0 is not mounted."""
    r = httpx.get(f"{server.url}/api/v0/accounts")
    assert r.status_code == 404
    assert httpx.get(f"{server.url}/api/v0/openapi.json").status_code == 404
