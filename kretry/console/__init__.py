"""``kretry console``: a web page to watch every stage and work the dead set. A client of kretry's core: it reads
through ``kretry.admin`` and ``kretry.dlq`` and replays through the same code as ``kretry dlq replay``.

app.py       create_app(): the routes and pages, every request checked first
session.py   pure: the session cookie, the login token, the CSRF token of every form
query.py     pure: a dead-set query string and a replay form, as kretry.dlq's arguments
show.py      pure: a record's value (JSON, text or hex), headers and path through the ladder, masked
overview.py  one row per stage: kretry.admin.stats, group members, rates between two looks
tally.py     the dead set's counts by origin topic and error type, kept up to date in the background
tiers.py     what waits in each retry tier; retry now and kill through kretry.control
waiting.py   bounded reads of what a group has not finished
gateway.py   a kretry gateway's configurations, pending events and recent failures, read off its topics
serve.py     serve(): the command's server, until SIGINT/SIGTERM
templates/, static/  Jinja2 (autoescaped) and a few lines of plain JavaScript, shipped in the package
"""

from kretry.console.app import create_app
from kretry.console.serve import serve

__all__ = ["create_app", "serve"]
