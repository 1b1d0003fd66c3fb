"""The web UI: static pages and ES modules that use only the admin REST API (/api/v0)."""
