"""kretry console without a broker: its pure parts (sessions, queries, how a record is shown, masking, the page
merge, rates) and the checks every request passes before any broker is asked."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from kretry import Retrier, dlq
from kretry import headers as hdr
from kretry.console import create_app, query, show
from kretry.console.overview import per_minute
from kretry.console.session import COOKIE, Keys
from kretry.dlq import DeadRecord
from kretry.errors import ConfigError
from kretry.masking import MASKED, checked, mask_headers, mask_value
from kretry.web.body import BadRequest

NOW = 1_700_000_000_000


def record(partition: int = 0, offset: int = 0, ts: int = 1000, **state: object) -> DeadRecord:
    s = hdr.State(**{"origin_topic": "orders", "origin_partition": 1, "origin_offset": 5, **state})  # type: ignore[arg-type]
    return DeadRecord(partition, offset, ts, b"k", b'{"a": 1}', [("x", b"<script>")], s)


# -- session ----------------------------------------------------------------------------------------------


def test_a_session_cookie_is_signed_and_carries_its_login() -> None:
    keys = Keys("t0k")
    session = keys.new()
    assert not session.authenticated
    assert keys.read(keys.cookie(session)) == session
    logged_in = keys.new(authenticated=True)
    assert keys.read(keys.cookie(logged_in)) == logged_in
    forged = keys.cookie(session).replace(".0.", ".1.")
    assert keys.read(forged) is None
    assert keys.read(Keys("t0k").cookie(logged_in)) is None  # another process's key
    for bad in (None, "", "a.b", "a.2.c", "a.b.c.d"):
        assert keys.read(bad) is None


def test_without_a_token_every_session_is_logged_in() -> None:
    keys = Keys(None)
    assert keys.new().authenticated
    assert keys.token_ok(None)


def test_csrf_tokens_belong_to_their_session() -> None:
    keys = Keys("t0k")
    one, two = keys.new(), keys.new()
    assert keys.csrf_ok(one, keys.csrf(one))
    assert not keys.csrf_ok(one, keys.csrf(two))
    assert not keys.csrf_ok(one, None)
    assert not keys.csrf_ok(one, "")


def test_the_token_is_compared_whole_and_never_shown() -> None:
    keys = Keys("t0k")
    assert keys.token_ok("t0k")
    assert keys.token_ok(" t0k ")
    assert not keys.token_ok("t0")
    assert not keys.token_ok(None)
    assert "t0k" not in repr(keys)


# -- query ------------------------------------------------------------------------------------------------


def test_a_query_drops_empty_fields_and_names_dlqs_arguments() -> None:
    q = query.parse({"topic": "orders", "key": "", "error": " boom ", "since": "2h", "before": "0:15,1:7"}, NOW)
    assert q.given == {"topic": "orders", "error": "boom", "since": "2h"}
    assert q.only == {"origin_topic": "orders", "error": "boom", "since": NOW - 7_200_000}
    assert q.before == {0: 15, 1: 7}
    assert q.link(before="0:3") == "topic=orders&error=boom&since=2h&before=0%3A3"
    assert query.parse({}, NOW).only == {"origin_topic": None}


@pytest.mark.parametrize("params", [{"since": "yesterday-ish"}, {"before": "0-15"}])
def test_a_bad_query_is_a_bad_request(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        query.parse(params, NOW)


def test_a_replay_form_names_records_or_all_that_match() -> None:
    one = query.action({"offset": ["0:4", "1:2"], "topic": ["orders"], "csrf": ["x"]}, NOW)
    assert (one.offsets, one.count, one.confirmed) == ([(0, 4), (1, 2)], None, False)
    assert one.replay_args() == {"count": None, "offsets": [(0, 4), (1, 2)], "origin_topic": "orders"}
    matching = query.action({"scope": ["matching"], "offset": ["0:4"], "error_type": ["E"], "confirm": ["yes"]}, NOW)
    assert (matching.offsets, matching.count, matching.confirmed) == ([], query.MATCHING_MAX, True)
    assert matching.replay_args()["error_type"] == "E"
    with pytest.raises(BadRequest, match="select records"):
        query.action({"scope": ["selected"]}, NOW)
    with pytest.raises(BadRequest, match="PARTITION:OFFSET"):
        query.action({"offset": ["x"]}, NOW)


# -- showing a record -------------------------------------------------------------------------------------


def test_a_value_is_shown_as_json_text_or_hex() -> None:
    assert show.value(b'{"b":[1,2]}') == show.Value("json", '{\n  "b": [\n    1,\n    2\n  ]\n}')
    assert show.value("héllo\nworld".encode()) == show.Value("text", "héllo\nworld")
    assert show.value(b"\x00\xffab") == show.Value("hex", "00 ff 61 62")
    assert show.value(None).kind == "none"
    big = show.value(b"a" * (show.SHOWN_MAX + 1))
    assert big.kind == "text"
    assert len(big.text) == show.SHOWN_MAX
    assert "first" in (big.note or "")


def test_headers_are_every_header_as_text() -> None:
    r = record(attempt=3, error="ValueError: no", group="svc")
    shown = dict(show.headers(r))
    assert shown["x"] == "<script>"  # escaping is the template's: the text is kept as it is
    assert shown["kretry-error"] == "ValueError: no"
    assert shown["kretry-attempt"] == "3"
    assert show.header_text(b"\x00\x01") == "hex: 00 01"
    assert show.header_text(None) == "(null)"


def test_the_path_follows_the_retriers_schedule() -> None:
    retrier = Retrier(group_id="svc", bootstrap_servers="127.0.0.1:1", dlq_topic="dlq")
    retrier.handler("orders", delays=["1s", "1m"])(lambda msg: None)
    hops = show.path(record(3, 9, attempt=3, error="E: x"), "dlq", retrier.handlers)
    assert [h.where for h in hops] == ["orders[1]@5", "orders_retry_1", "orders_retry_2", "dlq 3:9"]
    unknown = show.path(record(attempt=2, origin_topic="other"), "dlq", retrier.handlers)
    assert [h.where for h in unknown] == ["other[1]@5", "retry attempt 1", "dlq 0:0"]


# -- masking ----------------------------------------------------------------------------------------------


def test_a_field_list_masks_json_fields_at_any_depth_and_headers() -> None:
    shown, note = mask_value(("email", "card"), b'{"id": 1, "email": "a@b", "items": [{"card": "4111"}]}')
    assert json.loads(shown or b"") == {"id": 1, "email": MASKED, "items": [{"card": MASKED}]}
    assert note == "fields card, email masked"
    assert mask_headers(("email",), [("email", b"a@b"), ("trace", b"1")]) == [("email", b"***"), ("trace", b"1")]


def test_a_value_a_field_list_cannot_reach_is_hidden_whole() -> None:
    assert mask_value(("email",), b"email=a@b") == (
        None,
        "hidden: 9 bytes that are not a JSON object, and the mask names fields",
    )
    assert mask_value(("email",), b'"a@b"')[0] is None


def test_a_callable_mask_decides_and_one_that_raises_hides_everything() -> None:
    assert mask_value(lambda v: "redacted", b"secret") == (b"redacted", "masked by the Retrier's mask")

    def broken(value: bytes | None) -> bytes:
        raise KeyError("x")

    assert mask_value(broken, b"secret") == (None, "hidden: the mask raised KeyError")
    assert show.value(b"secret", broken).text == ""


def test_the_retrier_checks_its_mask() -> None:
    assert Retrier(group_id="svc", mask=["email"]).mask == ("email",)
    assert checked(None) is None
    for bad in ("email", [""], [3], 5):
        with pytest.raises(ConfigError, match="mask"):
            Retrier(group_id="svc", mask=bad)  # type: ignore[arg-type]


# -- pages of the dead set, rates -------------------------------------------------------------------------


def test_merge_page_takes_the_newest_and_says_where_the_next_page_starts() -> None:
    found = {
        0: [record(0, 9, ts=900), record(0, 8, ts=800), record(0, 2, ts=200)],
        1: [record(1, 5, ts=850)],
        2: [],
    }
    taken, cursor = dlq.merge_page(found, {0: 0, 1: 3, 2: 4}, {0: 0, 1: 0, 2: 4}, 3)
    assert [(r.partition, r.offset) for r in taken] == [(0, 9), (1, 5), (0, 8)]
    # Partition 0 goes on below its last taken; 1 had all its matches taken: on from its floor; 2 is done.
    assert cursor == {0: 8, 1: 3}
    _, last = dlq.merge_page({0: [record(0, 1, ts=1)]}, {0: 0}, {0: 0}, 5)
    assert last is None


def test_a_partition_none_of_whose_records_made_the_page_keeps_them_for_the_next() -> None:
    found = {0: [record(0, 9, ts=900)], 1: [record(1, 7, ts=100)]}
    taken, cursor = dlq.merge_page(found, {0: 5, 1: 2}, {0: 0, 1: 0}, 1)
    assert [(r.partition, r.offset) for r in taken] == [(0, 9)]
    assert cursor == {0: 5, 1: 8}


def test_cursors_round_trip() -> None:
    assert dlq.parse_cursor(dlq.format_cursor({1: 7, 0: 15})) == {0: 15, 1: 7}
    assert dlq.parse_cursor("") == {}
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        dlq.parse_cursor("0:x")


def test_error_type_filter_matches_the_class_or_its_short_name() -> None:
    r = record(error="HTTPError: 503", error_class="httpx.HTTPError")
    assert dlq.matches(r, error_type="httpx.HTTPError")
    assert dlq.matches(r, error_type="HTTPError")
    assert not dlq.matches(r, error_type="ValueError")


def test_per_minute() -> None:
    assert per_minute(100, 160, 30.0) == 120.0
    assert per_minute(None, 160, 30.0) is None
    assert per_minute(100, 90, 30.0) == 0.0  # a topic re-created shorter counts no negative rate
    assert per_minute(1, 2, 0.0) is None


# -- every request's checks, before any broker is asked ---------------------------------------------------


class Visitor:
    """The app in-process, with a cookie jar kept from one request to the next, as a browser keeps it."""

    def __init__(self, app: Starlette, base_url: str) -> None:
        self.app, self.base_url, self.cookies = app, base_url, httpx.Cookies()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=self.base_url, cookies=self.cookies) as c:
                answer = await c.request(method, path, **kwargs)
                self.cookies = c.cookies
                return answer

        return asyncio.run(send())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, follow_redirects: bool = False, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, follow_redirects=follow_redirects, **kwargs)


@pytest.fixture
def client() -> Visitor:
    retrier = Retrier(group_id="svc", bootstrap_servers="127.0.0.1:1", dlq_topic="dlq")
    retrier.handler("orders")(lambda msg: None)
    retrier.settings = retrier.settings.model_copy(update={"console_token": SecretStr("t0k")})
    return Visitor(create_app(retrier, loopback=True), base_url="http://127.0.0.1:8081")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def test_without_a_login_every_page_is_the_login_page(client: Visitor) -> None:
    first = client.get("/")
    assert "HttpOnly" in first.headers["set-cookie"]
    assert "SameSite=strict" in first.headers["set-cookie"]
    for path in ("/", "/dead", "/dead/0:1", "/overview/rows"):
        answer = client.get(path)
        assert answer.status_code == 401
        assert 'action="/login"' in answer.text
        assert "KRETRY_CONSOLE_TOKEN" in answer.text


def test_a_wrong_token_or_a_login_without_csrf_is_refused(client: Visitor) -> None:
    page = client.get("/login").text
    assert client.post("/login", data={"token": "t0k"}).status_code == 403  # no CSRF token
    wrong = client.post("/login", data={"token": "nope", "csrf": csrf_of(page)})
    assert wrong.status_code == 401
    assert "Wrong token" in wrong.text
    assert 'action="/logout"' not in page
    right = client.post("/login", data={"token": "t0k", "csrf": csrf_of(page)}, follow_redirects=False)
    assert 'action="/logout"' in client.get("/login").text
    assert right.status_code == 303
    assert COOKIE in right.headers["set-cookie"]


def test_an_action_without_its_csrf_token_is_refused(client: Visitor) -> None:
    page = client.get("/login").text
    client.post("/login", data={"token": "t0k", "csrf": csrf_of(page)}, follow_redirects=False)
    refused = client.post("/dead/replay", data={"offset": "0:1", "confirm": "yes"})
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    forged = client.post("/dead/replay", data={"offset": "0:1", "csrf": "0" * 64})
    assert forged.status_code == 403
    as_json = client.post("/dead/replay", json={"offset": "0:1", "csrf": csrf_of(page)})
    assert as_json.status_code == 415


def test_a_rebound_host_or_a_foreign_origin_is_refused(client: Visitor) -> None:
    assert client.get("/login", headers={"host": "evil.example"}).status_code == 403
    page = client.get("/login").text
    answer = client.post(
        "/login", data={"token": "t0k", "csrf": csrf_of(page)}, headers={"origin": "http://evil.example"}
    )
    assert answer.status_code == 403


def test_read_only_refuses_actions_even_with_a_csrf_token() -> None:
    retrier = Retrier(group_id="svc", bootstrap_servers="127.0.0.1:1", dlq_topic="dlq")
    app = create_app(retrier, loopback=True, read_only=True)
    client = Visitor(app, base_url="http://127.0.0.1:8081")
    page = client.get("/login").text  # without a token the login page is only a form; it still has the CSRF
    refused = client.post("/dead/replay", data={"offset": "0:1", "csrf": csrf_of(page)})
    assert refused.status_code == 403
    assert "read-only" in refused.text
