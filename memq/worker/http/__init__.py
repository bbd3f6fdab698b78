"""The daemon's HTTP API (Starlette).

    from memq.worker.http import create_app

    app = create_app(services, token=token, body_limit=limit)    # an ASGI app for uvicorn

``app`` builds the application and turns errors into answers; ``routes/`` holds the routes,
one module per topic, each a thin handler: read the request (``params`` for query and path
parameters, ``request`` for the body and the services), call the daemon (the session
operations are ``memq.worker.session_operations``), answer JSON.
"""

from __future__ import annotations

from memq.worker.http.app import create_app

__all__ = ["create_app"]
