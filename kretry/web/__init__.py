"""The one ASGI stack of kretry: the HTTP endpoint next to a worker (``kretry run --http-port``).

app.py      create_app(): routes, and the exceptions they raise turned into statuses at the edge
probes.py   /metrics, /healthz, /readyz
deadset.py  /v1/dead_set, /v1/dead_set/replay: pure request parsing, kretry.dlq off the event loop
guard.py    pure checks: CSRF, DNS rebinding, bearer token
server.py   Server: uvicorn in a thread, no signal handlers of its own
"""

from kretry.web.app import create_app
from kretry.web.server import Server

__all__ = ["Server", "create_app"]
