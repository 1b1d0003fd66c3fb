"""Request and response bodies of /api/v0, camelCase on the wire as DTR's API.

Bodies refuse unknown fields, so a typo is an error and not a silent no-op. Responses are
built from the services' frozen records by the ``*_out`` functions, never from ORM rows.
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..auth.principal import Principal
from ..metadata import accounts as q
from ..metadata.admin import RepositoryRow, TagRow
from ..trust.policy import NotarySignature

# A row id in a path: bounded to what the database's integers hold (a larger one is a 422,
# not an overflow deep in the driver).
MAX_ROW_ID = 2**63 - 1  # the databases' 64-bit integers: a larger id is a 422, not an overflow
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="a row id")]
AccessLevel = Literal["read-only", "read-write", "admin"]
Visibility = Literal["public", "private"]
SignatureKind = Literal["notary", "cosign", "notation"]
_KINDS: dict[str, SignatureKind] = {"notary": "notary", "cosign": "cosign", "notation": "notation"}
_LEVELS: dict[str, AccessLevel] = {"read-only": "read-only", "read-write": "read-write", "admin": "admin"}


def access_level(value: str) -> AccessLevel:
    """A level read from the database, checked."""
    return _LEVELS[value]


def utc(value: float) -> datetime.datetime:
    """A stored UNIX time as the API shows it (an aware UTC datetime)."""
    return datetime.datetime.fromtimestamp(value, datetime.UTC)


def timestamp(value: float | None) -> datetime.datetime | None:
    return None if value is None else utc(value)


class Schema(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, extra="forbid")


# --- accounts ------------------------------------------------------------------------------


class Account(Schema):
    id: int
    type: Literal["user", "organization"]
    name: str
    full_name: str
    email: str | None = Field(None, description="shown to the account itself and to administrators")
    is_active: bool
    is_admin: bool
    is_ldap: bool = Field(description="the user logs in through LDAP")
    created_at: datetime.datetime


def account_out(a: q.Account, viewer: Principal | None = None) -> Account:
    private = viewer is not None and (viewer.is_admin or viewer.name == a.name)
    return Account(
        id=a.id,
        type="user" if a.kind == "user" else "organization",
        name=a.name,
        full_name=a.full_name,
        email=a.email if private else None,
        is_active=a.is_active,
        is_admin=a.is_admin,
        is_ldap=a.ldap_dn is not None,
        created_at=utc(a.created_at),
    )


class AccountList(Schema):
    accounts: list[Account]


class OrganizationList(Schema):
    organizations: list[Account]


class NewAccount(Body):
    type: Literal["user", "organization"]
    name: str = Field(min_length=1, max_length=64)
    password: str | None = Field(None, description="required for users; organizations have none")
    full_name: str = Field("", max_length=255)
    email: str = Field("", max_length=255)
    is_admin: bool = False
    is_active: bool = True


class AccountPatch(Body):
    full_name: str | None = Field(None, max_length=255)
    email: str | None = Field(None, max_length=255)
    is_admin: bool | None = Field(None, description="administrators only")
    is_active: bool | None = Field(None, description="administrators only")


class ChangePassword(Body):
    old_password: str | None = Field(None, description="required unless the caller is an administrator")
    new_password: str


# --- teams ---------------------------------------------------------------------------------


class Team(Schema):
    id: int
    org_name: str
    name: str
    description: str
    type: Literal["managed", "ldap"]
    ldap_dn: str | None = Field(None, serialization_alias="ldapDN")


def team_out(t: q.Team) -> Team:
    return Team(
        id=t.id,
        org_name=t.org,
        name=t.name,
        description=t.description,
        type="ldap" if t.ldap_group_dn else "managed",
        ldap_dn=t.ldap_group_dn,
    )


class TeamList(Schema):
    teams: list[Team]


class NewTeam(Body):
    name: str = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=1024)
    type: Literal["managed", "ldap"] = "managed"
    ldap_dn: str | None = Field(None, alias="ldapDN", max_length=1024, description="the LDAP group, for type ldap")


class TeamPatch(Body):
    description: str | None = Field(None, max_length=1024)
    type: Literal["managed", "ldap"] | None = None
    ldap_dn: str | None = Field(None, alias="ldapDN", max_length=1024)


class MemberList(Schema):
    members: list[Account]


class LdapSyncResult(Schema):
    teams: dict[str, list[str]] = Field(description='members of each LDAP-linked team, by "org/team"')


# --- repositories --------------------------------------------------------------------------


class Repository(Schema):
    id: int
    namespace: str
    name: str
    short_description: str
    visibility: Visibility
    created_at: datetime.datetime
    signed_only: bool = Field(description="pulls by tag need a valid signature of the tag's digest")
    accepted_signatures: list[SignatureKind] = Field(description="the signatures that count for signedOnly")
    last_pulled_at: datetime.datetime | None = Field(
        None, description="the last manifest GET (pulls are written every few seconds); null if never"
    )


def repository_out(r: RepositoryRow) -> Repository:
    return Repository(
        id=r.id,
        namespace=r.namespace,
        name=r.short_name,
        short_description=r.short_description,
        visibility="public" if r.visibility == "public" else "private",
        created_at=utc(r.created_at),
        signed_only=r.signed_only,
        accepted_signatures=[_KINDS[k] for k in r.accepted_signatures if k in _KINDS],
        last_pulled_at=timestamp(r.last_pulled_at),
    )


class RepositoryList(Schema):
    repositories: list[Repository]


class NewRepository(Body):
    name: str = Field(min_length=1, max_length=200)
    visibility: Visibility = "private"
    short_description: str = Field("", max_length=255)


class RepositoryPatch(Body):
    visibility: Visibility | None = None
    short_description: str | None = Field(None, max_length=255)
    signed_only: bool | None = Field(None, description="repository admins only")
    accepted_signatures: list[SignatureKind] | None = Field(
        None, min_length=1, max_length=3, description="repository admins only; at least one kind"
    )


class TagSignature(Schema):
    kind: Literal["notary"] = "notary"
    gun: str = Field(description="the Notary collection, <registry host>/<repository>")
    role: str = Field(description='"targets" or a delegation such as "targets/releases"')
    key_ids: list[str] = Field(description="the keys whose signatures the role carries")
    digest: str = Field(description="the manifest digest signed for the tag")
    matches: bool = Field(description="the signed digest is the one the tag points to")
    expires: str


class Tag(Schema):
    name: str
    digest: str
    media_type: str
    size: int = Field(
        description="bytes a pull fetches: an image's manifest, config and layers; a multi-arch"
        " index's sum of those of its images"
    )
    updated_at: datetime.datetime
    pushed_by: str | None = Field(None, description="the account that pushed the tag last (None: anonymous)")
    last_pulled_at: datetime.datetime | None = Field(None, description="the last GET of the tag's manifest by tag")
    signed: bool = Field(False, description="a valid Notary signature names this tag at its current digest")
    signatures: list[TagSignature] = Field(default_factory=list, description="the valid Notary signatures of the tag")
    platforms: list[str] = Field(
        default_factory=list, description='of a multi-arch image (an index): "os/architecture[/variant]" of each child'
    )


def platforms_of(content: bytes) -> list[str]:
    """The platforms an index lists, as "os/arch[/variant]"; [] when it is not one or lists none."""
    if not content:
        return []
    try:
        doc = json.loads(content)
    except ValueError:
        return []
    out: list[str] = []
    for child in doc.get("manifests", []) if isinstance(doc, dict) else []:
        p = child.get("platform") if isinstance(child, dict) else None
        if isinstance(p, dict) and p.get("os") and p.get("architecture") and p.get("os") != "unknown":
            name = f"{p['os']}/{p['architecture']}" + (f"/{p['variant']}" if p.get("variant") else "")
            if name not in out:
                out.append(name)
    return out


def tag_out(t: TagRow, signatures: list[NotarySignature] | None = None) -> Tag:
    signed = [
        TagSignature(
            gun=s.gun,
            role=s.role,
            key_ids=list(s.keyids),
            digest=s.digest,
            matches=s.digest == t.digest,
            expires=s.expires,
        )
        for s in signatures or []
    ]
    return Tag(
        name=t.name,
        digest=t.digest,
        media_type=t.media_type,
        size=t.size,
        updated_at=utc(t.updated_at),
        pushed_by=t.pushed_by,
        last_pulled_at=timestamp(t.last_pulled_at),
        signed=any(s.matches for s in signed),
        signatures=signed,
        platforms=platforms_of(t.content),
    )


# --- grants --------------------------------------------------------------------------------


class AccessBody(Body):
    access_level: AccessLevel


class RepositoryAccess(Schema):
    access_level: AccessLevel
    repository: Repository


class TeamRepositoryAccess(Schema):
    team: Team
    repository_access_list: list[RepositoryAccess]


class TeamAccess(Schema):
    access_level: AccessLevel
    team: Team
    repository: Repository


class TeamGrant(Schema):
    access_level: AccessLevel
    team: Team


class TeamAccessList(Schema):
    repository: Repository
    team_access_list: list[TeamGrant]


class UserAccess(Schema):
    access_level: AccessLevel
    user: Account
    repository: Repository


class UserGrant(Schema):
    access_level: AccessLevel
    user: Account


class UserAccessList(Schema):
    repository: Repository
    user_access_list: list[UserGrant]


class NamespaceTeamAccess(Schema):
    access_level: AccessLevel
    team: Team
    namespace: str


class NamespaceTeamAccessList(Schema):
    namespace: str
    team_access_list: list[TeamGrant]


# --- access tokens -------------------------------------------------------------------------


class Token(Schema):
    id: str
    name: str
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None
    revoked: bool
    revoked_at: datetime.datetime | None


def token_out(t: q.TokenRecord) -> Token:
    created = timestamp(t.created_at)
    assert created is not None
    return Token(
        id=t.id,
        name=t.name,
        created_at=created,
        last_used_at=timestamp(t.last_used_at),
        revoked=t.revoked_at is not None,
        revoked_at=timestamp(t.revoked_at),
    )


class TokenList(Schema):
    tokens: list[Token]


class NewToken(Body):
    name: str = Field(min_length=1, max_length=100, description="what the token is for")


class CreatedToken(Schema):
    id: str
    name: str
    token: str = Field(description="the secret, shown only in this response; use it as the Basic password")


# --- audit ---------------------------------------------------------------------------------


class AuditEvent(Schema):
    id: int
    at: datetime.datetime
    actor: str
    action: str
    target: str
    outcome: str
    address: str
    detail: Any = None


class AuditList(Schema):
    events: list[AuditEvent]
