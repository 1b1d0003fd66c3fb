"""Tables of the registry core (SQLAlchemy Core). Times are epoch seconds (float), so
SQLite and PostgreSQL store and compare them alike."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
)

# Content-addressed bytes, stored once whatever the number of repositories using them.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

# A repository may serve a blob only through a link (pushed or mounted there).
repository_blobs = Table(
    "repository_blobs",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(200), ForeignKey("blobs.digest"), nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("repository_id", "digest"),
    Index("ix_repository_blobs_digest", "digest"),
)

manifests = Table(
    "manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("digest", String(200), nullable=False),
    Column("media_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),  # the exact bytes pushed
    Column("artifact_type", String(255)),  # artifactType, else config.mediaType
    Column("subject_digest", String(200)),
    Column("annotations", Text),  # JSON object, for the referrers API
    Column("created_at", Float, nullable=False),
    UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
    Index("ix_manifests_subject", "repository_id", "subject_digest"),
    Index("ix_manifests_created_at", "created_at"),  # the dashboard's pushes over time
)

# What a manifest points at: kind "blob" (config, layers) or "manifest" (index children).
manifest_references = Table(
    "manifest_references",
    metadata,
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("digest", String(200), nullable=False),
    PrimaryKeyConstraint("manifest_id", "kind", "digest"),
    Index("ix_manifest_references_digest", "digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("manifest_id", Integer, ForeignKey("manifests.id", ondelete="CASCADE"), nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("pushed_by", String(255)),  # the account that last moved the tag; NULL: anonymous or unknown
    PrimaryKeyConstraint("repository_id", "name"),
    Index("ix_tags_manifest", "manifest_id"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)


# --- accounts and access (issue: accounts, permissions and the token service) --------------

# Users and organizations share one namespace of names: a repository "<name>/..." belongs to it.
accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # "user" | "organization"
    Column("password_hash", String(255)),  # argon2; None for organizations and LDAP users
    Column("full_name", String(255), nullable=False, default=""),
    Column("email", String(255), nullable=False, default=""),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("ldap_dn", String(1024)),  # set for users that log in through LDAP
    Column("created_at", Float, nullable=False),
)

teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", String(1024), nullable=False, default=""),
    Column("ldap_group_dn", String(1024)),  # members synced from this LDAP group
    Column("created_at", Float, nullable=False),
    UniqueConstraint("org_id", "name", name="uq_teams_org_name"),
)

team_members = Table(
    "team_members",
    metadata,
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    PrimaryKeyConstraint("team_id", "account_id"),
    Index("ix_team_members_account", "account_id"),
)

repository_settings = Table(
    "repository_settings",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True),
    Column("visibility", String(16), nullable=False, default="private"),  # "public" | "private"
    Column("short_description", String(255), nullable=False, default=""),
    # "Only signed content": a tag pulls only when a valid signature of its digest exists.
    Column("signed_only", Boolean, nullable=False, default=False, server_default="0"),
    # Which signatures count for signed_only: a comma list of notary, cosign, notation.
    Column("accepted_signatures", String(64), nullable=False, default="notary", server_default="notary"),
)

# A grant on one repository to a user (user-owned repositories) or a team (org-owned ones).
repository_access = Table(
    "repository_access",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE")),
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE")),
    Column("level", String(16), nullable=False),  # "read-only" | "read-write" | "admin"
    UniqueConstraint("repository_id", "account_id", "team_id", name="uq_repository_access_grantee"),
)

# A team's grant on every repository of its organization.
namespace_access = Table(
    "namespace_access",
    metadata,
    Column("org_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="CASCADE"), nullable=False),
    Column("level", String(16), nullable=False),
    PrimaryKeyConstraint("org_id", "team_id"),
)

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("id", String(32), primary_key=True),  # the public half of the token
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("secret_hash", String(128), nullable=False),  # sha256 of the secret half (high entropy: no salt needed)
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(255), nullable=False),  # account name, "" for anonymous
    Column("action", String(64), nullable=False),  # e.g. "login", "token", "account.create"
    Column("target", String(1024), nullable=False, default=""),
    Column("outcome", String(16), nullable=False),  # "allowed" | "denied" | "ok" | "failed"
    Column("address", String(64), nullable=False, default=""),
    Column("detail", Text),  # JSON
    Index("ix_audit_events_at", "at"),
)

# --- content trust (Notary v1) ------------------------------------------------------------
# Every version of every TUF role file of a GUN ("<host>/<repository>"), kept verbatim:
# clients fetch by name, by version (root rotations) and by SHA-256 of the exact bytes.
trust_files = Table(
    "trust_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gun", String(512), nullable=False),
    Column("repository", String(255), nullable=False),  # the GUN without its host, for policy lookups
    Column("role", String(255), nullable=False),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("gun", "role", "version", name="uq_trust_files_gun_role_version"),
    Index("ix_trust_files_gun_role_sha256", "gun", "role", "sha256"),
    Index("ix_trust_files_repository", "repository"),
)

# The changefeed: one row per stored timestamp, and one per deletion of a GUN.
trust_changes = Table(
    "trust_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("gun", String(512), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("category", String(16), nullable=False),  # "update" | "deletion"
    Column("created_at", Float, nullable=False),
)

# Which server-held (signer) keys belong to which GUN and role; the private halves live only
# in the signer. The newest key of a role is the one handed out; older ones stay until rotated.
trust_keys = Table(
    "trust_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("gun", String(512), nullable=False),
    Column("role", String(32), nullable=False),  # "timestamp" | "snapshot"
    Column("algorithm", String(32), nullable=False),
    Column("public", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_trust_keys_gun_role", "gun", "role"),
)

# Keys and certificates that verify OCI-artifact signatures (cosign, Notation) of a repository.
repository_signers = Table(
    "repository_signers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # "cosign" (public key) | "notation" (certificate)
    Column("pem", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("repository_id", "name", name="uq_repository_signers_repository_id_name"),
)

# --- lifecycle policies -------------------------------------------------------------------
# Per repository or per namespace (scope "repository" | "namespace", target its name):
#   kind "immutable"          {}                                   tags cannot move or be deleted
#   kind "quota"              {"bytes": n}                         a push over it is refused
#   kind "untagged_retention" {"seconds": n}                       GC keeps untagged manifests that long
#   kind "prune"              {"pattern", "keep", "max_age_seconds"}  the prune job deletes old tags
lifecycle_policies = Table(
    "lifecycle_policies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("target", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_lifecycle_policies_target", "scope", "target"),
)

# --- webhooks -----------------------------------------------------------------------------
# A subscription: scope "repository" (target "ns/repo"), "namespace" (target "ns": every
# repository under it) or "global" (target "": every event, registry-wide ones included).
# events is a JSON list; secret is AES-GCM sealed with a key derived from the master key.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(16), nullable=False),
    Column("target", String(255), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("events", Text, nullable=False),
    Column("secret", LargeBinary, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("author", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_success_at", Float),
    Index("ix_webhook_subscriptions_target", "scope", "target"),
)

# One payload to one subscription. status "pending" (next_attempt_at due) → "sending"
# (claimed by one process until claimed_until) → "delivered" | "failed" (attempts exhausted),
# or back to "pending" with a later next_attempt_at. The response fields are the last attempt's.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("guid", String(36), nullable=False, unique=True),
    Column(
        "subscription_id",
        Integer,
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("claimed_until", Float),
    Column("last_attempt_at", Float),
    Column("response_status", Integer),
    Column("response_body", Text),
    Column("duration_ms", Float),
    Column("error", Text),
    Column("redelivery_of", Integer),
    Column("created_at", Float, nullable=False),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
)

# --- jobs ---------------------------------------------------------------------------------
# A cron schedule that enqueues a job of ``action`` at each due time. next_run_at is claimed
# with a conditional UPDATE, so several processes enqueue one job per due time between them.
schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("action", String(64), nullable=False),
    Column("parameters", Text, nullable=False),  # JSON object
    Column("cron", String(255), nullable=False),  # 5 fields, UTC
    Column("enabled", Boolean, nullable=False),
    Column("next_run_at", Float, nullable=False),
    Column("last_job_id", Integer),
    Column("created_at", Float, nullable=False),
)

# One run of an action. status "waiting" (due at run_after) → "running" (claimed by worker,
# alive while heartbeat_at is fresh) → "done" | "errored" (attempts exhausted) | "cancelled",
# or back to "waiting" with a later run_after after a failed attempt. A running job whose
# heartbeat is older than the lease is taken over by another worker (a new attempt).
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action", String(64), nullable=False),
    Column("parameters", Text, nullable=False),  # JSON object
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("run_after", Float, nullable=False),
    Column("worker", String(255)),
    Column("heartbeat_at", Float),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("progress_done", BigInteger, nullable=False),
    Column("progress_total", BigInteger),
    Column("summary", Text),  # JSON, what the handler returned
    Column("error", Text),
    Column("cancel_requested", Boolean, nullable=False),
    Column("schedule_id", Integer, ForeignKey("schedules.id", ondelete="SET NULL")),
    Column("created_by", String(255), nullable=False),
    Index("ix_jobs_due", "status", "run_after"),
    Index("ix_jobs_action", "action", "id"),
)

job_logs = Table(
    "job_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Index("ix_job_logs_job", "job_id", "id"),
)

# --- web UI sessions ----------------------------------------------------------------------
# A signed-in browser. The cookie carries a random token; only its SHA-256 is stored, so a
# copy of the database does not sign anyone in. Ends at expires_at (absolute) or after the
# idle limit since last_seen_at, whichever comes first.
sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),  # sent back in X-CSRF-Token by the UI
    Column("created_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("address", String(64), nullable=False, default=""),
    Index("ix_sessions_account", "account_id"),
    Index("ix_sessions_expires", "expires_at"),
)

# --- pulls --------------------------------------------------------------------------------
# Manifest GETs, counted in memory by each registry process and added here in batches
# (registry/services/pulls.py): per repository and UTC day (days since the epoch), with the
# last pull of that day; and the last pull of each tag.
pulls_per_day = Table(
    "pulls_per_day",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("day", Integer, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("last_pulled_at", Float, nullable=False),
    PrimaryKeyConstraint("repository_id", "day"),
    Index("ix_pulls_per_day_day", "day"),
)

tag_pulls = Table(
    "tag_pulls",
    metadata,
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("tag", String(128), nullable=False),
    Column("last_pulled_at", Float, nullable=False),
    PrimaryKeyConstraint("repository_id", "tag"),
)
