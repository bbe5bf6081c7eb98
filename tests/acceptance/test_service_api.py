"""The HTTP API of ``postroom serve``, driven over real HTTP as another program would."""

from __future__ import annotations

import asyncio
import base64
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from tests.support.cli import run_postroom
from tests.support.service import Service, free_port, running_service, start_service
from tests.support.smtpd import Recorder, SMTPServer
from tests.support.waiting import wait_until


def mail_env(server: SMTPServer, **more: str) -> dict[str, str]:
    env = {
        "POSTROOM_MAIL_ENABLED": "true",
        "POSTROOM_MAIL_HOST": server.host,
        "POSTROOM_MAIL_PORT": str(server.port),
        "POSTROOM_DELIVERY_BACKOFF_MIN": "1",
        "POSTROOM_DELIVERY_BACKOFF_MAX": "2",
    }
    env.update(more)
    return env


@pytest.fixture
def service(tmp_path: Path, smtp_server: SMTPServer) -> Iterator[Service]:
    """A service delivering to a real SMTP server, with a 60 s poll: mail that arrives
    promptly was woken by the enqueue, not found by polling."""
    env = mail_env(smtp_server, POSTROOM_DELIVERY_POLL_INTERVAL="60")
    with running_service(tmp_path / "home", env=env) as running:
        yield running


def message_body(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {"to": "ada@example.org", "subject": "Welcome", "text": "Hi Ada"}
    body.update(changes)
    return body


def test_first_start_prints_the_console_url_and_a_one_time_login(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_service(home) as first:
        assert f"console at http://127.0.0.1:{first.port}/console/" in first.output
        password = first.first_password()
    with running_service(home) as second:
        assert "first login" not in second.output
        assert password not in second.output
        assert "postroom user passwd" in second.output


def test_a_send_token_enqueues_and_the_idle_worker_delivers_at_once(
    service: Service, smtp_server: SMTPServer
) -> None:
    token = service.token("omero", scope="send")
    with service.client(token) as client:
        answer = client.post("/api/v1/messages", json=message_body(to=["ada@example.org"]))
    assert answer.status_code == 202
    accepted = answer.json()
    assert set(accepted) == {"id", "message_id"}
    wait_until(lambda: smtp_server.messages, timeout=15)
    got = message_from_bytes(smtp_server.messages[0].content, policy=policy.default)
    assert got["Subject"] == "Welcome"
    assert got["Message-ID"] == accepted["message_id"]
    assert smtp_server.messages[0].rcpt_tos == ["ada@example.org"]


def test_attachments_travel_base64(service: Service, smtp_server: SMTPServer) -> None:
    token = service.token("app", scope="send")
    content = b"%PDF-1.4 not really\x00\xff"
    attachment = {
        "filename": "report.pdf",
        "content_type": "application/pdf",
        "content_base64": base64.b64encode(content).decode(),
    }
    with service.client(token) as client:
        answer = client.post("/api/v1/messages", json=message_body(attachments=[attachment]))
        assert answer.status_code == 202
        bad = client.post(
            "/api/v1/messages",
            json=message_body(attachments=[{**attachment, "content_base64": "no base64!"}]),
        )
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "attachments.0.content_base64"
    wait_until(lambda: smtp_server.messages, timeout=15)
    got = message_from_bytes(smtp_server.messages[0].content, policy=policy.default)
    files = list(got.iter_attachments())
    assert files[0].get_filename() == "report.pdf"
    assert files[0].get_content() == content


def test_tokens_are_needed_and_scoped(service: Service) -> None:
    send_token = service.token("sender", scope="send")
    with service.client() as anonymous:
        none = anonymous.post("/api/v1/messages", json=message_body())
        made_up = anonymous.get(
            "/api/v1/messages", headers={"Authorization": "Bearer pr_aaaaaaaaaaaa_" + "b" * 43}
        )
        in_url = anonymous.get(f"/api/v1/messages?access_token={send_token}")
    assert none.status_code == 401
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    assert none.json()["error"]["code"] == "unauthenticated"
    assert made_up.status_code == 401
    assert in_url.status_code == 401
    assert "Authorization: Bearer" in in_url.json()["error"]["message"]
    with service.client(send_token) as sender:
        listing = sender.get("/api/v1/messages")
    assert listing.status_code == 403
    assert "admin token" in listing.json()["error"]["message"]


def test_a_revoked_token_stops_working(service: Service) -> None:
    token = service.token("leaving", scope="send")
    with service.client(token) as client:
        assert client.post("/api/v1/messages", json=message_body()).status_code == 202
        revoked = run_postroom(service.home, "token", "revoke", "leaving", env=service.env)
        assert revoked.code == 0
        wait_until(
            lambda: client.post("/api/v1/messages", json=message_body()).status_code == 401,
            timeout=20,
            step=0.5,
        )
    listed = run_postroom(service.home, "token", "list", "--json", env=service.env)
    assert token not in listed.output
    assert '"revoked_at": "' in listed.stdout


def test_bad_requests_get_one_clear_error_and_change_nothing(service: Service) -> None:
    token = service.token("app")
    with service.client(token) as client:
        missing = client.post("/api/v1/messages", json={"to": "ada@example.org", "text": "x"})
        unknown = client.post("/api/v1/messages", json=message_body(colour="red"))
        address = client.post("/api/v1/messages", json=message_body(to="not an address"))
        injected = client.post("/api/v1/messages", json=message_body(subject="a\r\nBcc: x@y.z"))
        not_json = client.post(
            "/api/v1/messages", content=b"to=ada", headers={"Content-Type": "text/plain"}
        )
        broken = client.post(
            "/api/v1/messages", content=b"{", headers={"Content-Type": "application/json"}
        )
        listing = client.get("/api/v1/messages").json()
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "subject"
    assert unknown.status_code == 422
    assert unknown.json()["error"]["field"] == "colour"
    assert address.status_code == 422
    assert address.json()["error"]["code"] == "invalid_address"
    assert injected.status_code == 422
    assert not_json.status_code == 415
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "bad_json"
    assert listing["items"] == []


def test_a_body_over_the_size_cap_is_413(tmp_path: Path) -> None:
    with running_service(tmp_path, env={"POSTROOM_MAIL_MAX_SIZE": "2000"}) as service:
        token = service.token("app")
        with service.client(token) as client:
            huge = client.post("/api/v1/messages", json=message_body(text="x" * 200_000))
            composed_too_big = client.post("/api/v1/messages", json=message_body(text="y" * 2500))
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "too_large"
    assert composed_too_big.status_code == 413
    assert "mail.max_size" in composed_too_big.json()["error"]["message"]


def test_idempotency_key_answers_once(service: Service) -> None:
    token = service.token("app", scope="send")
    key = str(uuid.uuid4())
    with service.client(token) as client:
        first = client.post(
            "/api/v1/messages", json=message_body(), headers={"Idempotency-Key": key}
        )
        again = client.post(
            "/api/v1/messages", json=message_body(), headers={"Idempotency-Key": key}
        )
        other = client.post(
            "/api/v1/messages", json=message_body(text="changed"), headers={"Idempotency-Key": key}
        )
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert other.status_code == 409
    listed = run_postroom(service.home, "outbox", "list", "--json", env=service.env)
    assert listed.stdout.count('"message_id"') == 1


def test_each_token_has_its_rate(tmp_path: Path) -> None:
    with running_service(tmp_path, env={"POSTROOM_WEB_RATE_LIMIT": "3/min"}) as service:
        busy, other = service.token("busy"), service.token("other")
        with service.client(busy) as client:
            codes = [client.get("/api/v1/users").status_code for _ in range(4)]
            refused = client.get("/api/v1/users")
        with service.client(other) as client:
            fine = client.get("/api/v1/users")
    assert codes == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert fine.status_code == 200


def test_the_outbox_pages_filters_and_shows_a_message(service: Service) -> None:
    token = service.token("admin")
    with service.client(token) as client:
        ids = [
            client.post(
                "/api/v1/messages", json=message_body(to=f"user{i}@example.org", hold=True)
            ).json()["id"]
            for i in range(5)
        ]
        first = client.get("/api/v1/messages", params={"limit": 2}).json()
        second = client.get(
            "/api/v1/messages", params={"limit": 2, "cursor": first["next_cursor"]}
        ).json()
        only = client.get("/api/v1/messages", params={"to": "user3@example.org"}).json()
        held = client.get("/api/v1/messages", params={"status": "held"}).json()
        bad_state = client.get("/api/v1/messages", params={"status": "lost"})
        one = client.get(f"/api/v1/messages/{ids[0]}").json()
        missing = client.get("/api/v1/messages/999999")
    assert [m["id"] for m in first["items"]] == [ids[4], ids[3]]
    assert [m["id"] for m in second["items"]] == [ids[2], ids[1]]
    assert [m["id"] for m in only["items"]] == [ids[3]]
    assert len(held["items"]) == 5
    assert bad_state.status_code == 400
    assert one["recipients"][0]["address"] == "user0@example.org"
    assert one["status"] == "held"
    assert "Subject: Welcome" in one["raw"]
    assert missing.status_code == 404


def test_hold_release_and_retry(service: Service, smtp_server: SMTPServer) -> None:
    smtp_server.handler.rcpt_replies["*@refused.example"] = "550 5.1.1 no such user"
    token = service.token("admin")
    with service.client(token) as client:
        held = client.post("/api/v1/messages", json=message_body(hold=True)).json()["id"]
        again = client.post(f"/api/v1/messages/{held}/hold")
        released = client.post(f"/api/v1/messages/{held}/release")
        wait_until(lambda: client.get(f"/api/v1/messages/{held}").json()["status"] == "sent", 15)
        sent_retry = client.post(f"/api/v1/messages/{held}/retry")
        refused = client.post(
            "/api/v1/messages", json=message_body(to="bob@refused.example")
        ).json()["id"]
        wait_until(
            lambda: client.get(f"/api/v1/messages/{refused}").json()["status"] == "failed", 15
        )
        failed = client.get(f"/api/v1/messages/{refused}").json()
        smtp_server.handler.rcpt_replies.clear()
        retried = client.post(f"/api/v1/messages/{refused}/retry")
        wait_until(lambda: client.get(f"/api/v1/messages/{refused}").json()["status"] == "sent", 15)
    assert again.status_code == 409
    assert released.json() == {"id": held, "status": "queued"}
    assert sent_retry.status_code == 409
    assert "it was sent" in sent_retry.json()["error"]["message"]
    assert failed["recipients"][0]["code"] == 550
    assert "no such user" in failed["attempt_log"][0]["detail"]
    assert retried.status_code == 200


def test_users_groups_and_a_broadcast(service: Service, smtp_server: SMTPServer) -> None:
    token = service.token("admin")
    with service.client(token) as client:
        created = client.post(
            "/api/v1/users",
            json={"username": "ada", "full_name": "Ada L", "email": "ada@example.org"},
        )
        updated = client.post("/api/v1/users", json={"username": "ada", "groups": ["lab"]})
        client.post("/api/v1/users", json={"username": "bob", "email": "bob@example.org"})
        taken = client.post("/api/v1/groups", json={"name": "lab"})
        group = client.post("/api/v1/groups", json={"name": "staff"})
        users = client.get("/api/v1/users").json()
        bad_user = client.post("/api/v1/users", json={"username": "12"})
        started = client.post(
            "/api/v1/broadcasts",
            json={"subject": "Maintenance", "text": "Down at 6", "everyone": True},
        )
        broadcast = started.json()["id"]
        wait_until(lambda: len(smtp_server.messages) == 2, timeout=20)
        progress = client.get(f"/api/v1/broadcasts/{broadcast}").json()
        nobody = client.post(
            "/api/v1/broadcasts", json={"subject": "x", "text": "y", "users": ["ghost"]}
        )
    assert created.status_code == 201
    assert updated.status_code == 200
    assert updated.json()["groups"] == ["lab"]
    assert updated.json()["email"] == "ada@example.org"
    assert taken.status_code == 409
    assert group.status_code == 201
    assert {u["username"] for u in users} >= {"root", "ada", "bob"}
    assert bad_user.status_code == 422
    assert started.status_code == 202
    assert progress["total"] == 3  # root has no address: skipped
    assert progress["queued"] == 2
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == [
        "ada@example.org",
        "bob@example.org",
    ]
    assert nobody.status_code == 404


def test_test_email_reports_each_step(
    service: Service, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    token = service.token("admin")
    with service.client(token) as client:
        good = client.post("/api/v1/test-email", json={"to": "ops@example.org"}).json()
    assert good["ok"] is True
    assert [s["name"] for s in good["steps"]][:2] == ["resolve", "connect"]
    closed = free_port()
    env = mail_env(smtp_server, POSTROOM_MAIL_PORT=str(closed))
    with (
        running_service(tmp_path / "other", env=env) as broken,
        broken.client(broken.token("admin")) as client,
    ):
        bad = client.post("/api/v1/test-email", json={"to": "ops@example.org"}).json()
    assert bad["ok"] is False
    failing = next(step for step in bad["steps"] if not step["ok"])
    assert failing["name"] == "connect"
    assert failing["fix"]


def test_catch_keeps_mail_in_the_record_and_the_api_reads_it(tmp_path: Path) -> None:
    with running_service(tmp_path, catch=True) as service:
        assert "RECORDING" in service.output
        token = service.token("admin")
        with service.client(token) as client:
            client.post("/api/v1/messages", json=message_body(to="ada@example.org"))
            client.post("/api/v1/messages", json=message_body(to="bob@example.org"))
            wait_until(lambda: len(client.get("/api/v1/captured").json()) == 2, timeout=15)
            for_bob = client.get("/api/v1/captured", params={"to": "bob@example.org"}).json()
            one = client.get(f"/api/v1/captured/{for_bob[0]['id']}").json()
            diagnosis = client.post("/api/v1/test-email", json={"to": "ops@example.org"}).json()
            health = client.get("/healthz").json()
            cleared = client.delete("/api/v1/captured").json()
            after = client.get("/api/v1/captured").json()
    assert [m["rcpt_tos"] for m in for_bob] == [["bob@example.org"]]
    assert one["rcpt_tos"] == ["bob@example.org"]
    assert "To: bob@example.org" in one["raw"]
    assert diagnosis["ok"] is True  # through the capture server
    assert health["recording"].startswith("RECORDING MODE")
    assert cleared["deleted"] == 3
    assert after == []


def test_healthz_and_metrics_need_no_login(service: Service, smtp_server: SMTPServer) -> None:
    token = service.token("app", scope="send")
    with service.client(token) as client:
        client.post("/api/v1/messages", json=message_body())
    wait_until(lambda: smtp_server.messages, timeout=15)
    with service.client() as anonymous:
        wait_until(
            lambda: 'postroom_messages_total{outcome="sent"} 1.0' in anonymous.get("/metrics").text,
            timeout=10,
        )
        health = anonymous.get("/healthz").json()
        metrics = anonymous.get("/metrics").text
    assert health["status"] == "ok"
    assert health["queue"]["counts"]["sent"] == 1
    assert health["delivery"]["workers"] == 1
    assert 'postroom_queue_messages{state="sent"} 1.0' in metrics
    assert "postroom_delivery_latency_seconds_bucket" in metrics


def test_paused_delivery_shows_in_healthz_with_the_reason(
    tmp_path: Path, make_smtp_server: Callable[..., SMTPServer]
) -> None:
    server = make_smtp_server(auth=("omero", "right"), auth_required=True)
    env = mail_env(server, POSTROOM_MAIL_USERNAME="omero", POSTROOM_MAIL_PASSWORD="wrong")
    with (
        running_service(tmp_path, env=env) as service,
        service.client(service.token("app")) as client,
    ):
        client.post("/api/v1/messages", json=message_body())
        wait_until(lambda: client.get("/healthz").json()["status"] == "paused", 20)
        health = client.get("/healthz").json()
        listing = client.get("/api/v1/messages").json()
    assert health["delivery"]["paused"] is True
    assert "login" in health["delivery"]["reason"].lower() or "535" in health["delivery"]["reason"]
    assert "wrong" not in str(health)
    assert listing["items"][0]["status"] in ("queued", "sending")


def test_host_names_not_served_are_refused(service: Service) -> None:
    with service.client() as client:
        rebound = client.get("/healthz", headers={"Host": "attacker.example"})
        local = client.get("/healthz", headers={"Host": f"localhost:{service.port}"})
    assert rebound.status_code == 400
    assert rebound.json()["error"]["code"] == "bad_host"
    assert local.status_code == 200


@dataclass
class GatedRecorder(Recorder):
    """Holds every DATA until ``go`` is set: a message stays in flight meanwhile."""

    arrived: threading.Event = field(default_factory=threading.Event)
    go: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        self.arrived.set()
        while not self.go.is_set():
            await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)


def test_sigterm_finishes_mail_in_flight_and_exits_0(
    tmp_path: Path, make_smtp_server: Callable[..., SMTPServer]
) -> None:
    gate = GatedRecorder()
    server = make_smtp_server(gate)
    service = start_service(tmp_path, env=mail_env(server))
    with service.client(service.token("app")) as client:
        client.post("/api/v1/messages", json=message_body())
    assert gate.arrived.wait(15)
    service.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "finishing messages in flight" in service.output, timeout=15)
    gate.go.set()
    assert service.stop() == 0
    assert "postroom serve stopped" in service.output
    listed = run_postroom(tmp_path, "outbox", "list", "--json")
    assert '"status": "sent"' in listed.stdout
    assert '"status": "sending"' not in listed.stdout


def test_a_non_loopback_bind_needs_an_allow(tmp_path: Path) -> None:
    done = run_postroom(tmp_path, "serve", "--bind", "0.0.0.0:18099")
    assert done.code == 2
    assert done.stderr.strip().count("\n") == 0
    assert "web.allow_remote=true" in done.stderr


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        done = run_postroom(tmp_path, "serve", "--bind", f"127.0.0.1:{busy.getsockname()[1]}")
    assert done.code == 1
    assert "Traceback" not in done.stderr
    assert "choose another address with --bind" in done.stderr


def test_any_http_client_can_send(service: Service, smtp_server: SMTPServer) -> None:
    """What a Java host app does: plain HTTP/1.1, its own JSON, a token header."""
    token = service.token("labkey", scope="send")
    body = b'{"to": "lab@example.org", "subject": "Run finished", "text": "Plate 7 is done."}'
    request = (
        f"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as raw:
        raw.sendall(request)
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 202")
    wait_until(lambda: smtp_server.messages, timeout=15)
    assert smtp_server.messages[0].rcpt_tos == ["lab@example.org"]


def test_the_openapi_description_is_served_to_token_holders(service: Service) -> None:
    with service.client() as anonymous:
        assert anonymous.get("/api/openapi.json").status_code == 401
    with service.client(service.token("app", scope="send")) as client:
        spec = client.get("/api/openapi.json").json()
    assert "/api/v1/messages" in spec["paths"]
    assert spec["components"]["securitySchemes"]
