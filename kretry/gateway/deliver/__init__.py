"""The gateway's delivery edge: send one event body to one target, and say what came of it.

targets.py    pure: HttpTarget, SqsTarget (their repr never shows a secret), safe_url
outcome.py    pure: Outcome, classify_http, Retry-After, exceptions turned into Outcomes
http.py       HttpDeliverer: POST through one pooled httpx client, redirects not followed
sqs.py        SqsDeliverer: boto3 SendMessage in threads of its own, one client per (region, keys, endpoint)
deliverer.py  Deliverer: both, dispatched on the target's type

``deliver()`` never raises for a failed delivery; it returns an Outcome:

=====================================================  ====  =====  ==========================================
what happened                                          ok    retry  note
=====================================================  ====  =====  ==========================================
HTTP 2xx; SQS message accepted (its MD5 checked)       yes   no
HTTP 408, 5xx                                          no    yes
HTTP 429, 503                                          no    yes    ``not_before`` from ``Retry-After``
HTTP 1xx, 3xx (redirects not followed), other 4xx      no    no     to the DLQ at once
timeout (connect, send, answer, pool)                  no    yes    "timed out <stage> after <n>s"
connection refused, reset, unreachable                 no    yes    "connection failed: ..."
SQS throttling, 5xx, 408, 429                          no    yes
SQS client error (no such queue, access denied,        no    no     to the DLQ at once
invalid parameter or body), no credentials or region
a malformed URL; a body that is not UTF-8 (SQS)        no    no     to the DLQ at once
anything unforeseen                                    no    yes    "unexpected <type>: ..."
=====================================================  ====  =====  ==========================================

Every error text starts with where it happened (``POST <url>``, ``SQS <url>``), the URL without credentials, and
never holds a password or key. ``not_before`` is an absolute ``time.time()``: a minimum the schedule honours.
"""

from kretry.gateway.deliver.deliverer import Deliverer
from kretry.gateway.deliver.http import HttpDeliverer
from kretry.gateway.deliver.outcome import DELIVERED, Outcome, classify_http, parse_retry_after
from kretry.gateway.deliver.sqs import SqsDeliverer
from kretry.gateway.deliver.targets import HttpTarget, SqsTarget, Target, safe_url

__all__ = [
    "DELIVERED",
    "Deliverer",
    "HttpDeliverer",
    "HttpTarget",
    "Outcome",
    "SqsDeliverer",
    "SqsTarget",
    "Target",
    "classify_http",
    "parse_retry_after",
    "safe_url",
]
