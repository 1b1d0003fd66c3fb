"""Health checks, Prometheus metrics and structured logs.

- ``health``: ``/_ping``, ``/health``, ``/load_balancer_status`` (DTR spec §4), no authentication.
- ``metrics``: a per-app ``CollectorRegistry``, the pure-ASGI ``MetricsMiddleware`` and ``/metrics``.
- ``logs``: the request-id context variable and the one-JSON-object-per-line formatter.

Everything is built in ``app.create_app`` and kept on ``app.state`` (``health``, ``metrics``).
"""
