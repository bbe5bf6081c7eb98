"""Event notifications as users reach them: ``postroom emit``, ``templates``,
``heartbeat`` and ``user prefs`` in a shell, and ``postroom serve`` over real HTTP
delivering to a real SMTP server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.cli import run_postroom
from tests.support.notify import mails, text_of
from tests.support.service import Service, running_service
from tests.support.smtpd import SMTPServer
from tests.support.waiting import wait_until

IMAGE = {"kind": "image", "id": 7, "title": "Plate 7", "owner": "alice", "url": "https://o/7"}


def setup_home(home: Path, server: SMTPServer) -> dict[str, str]:
    env = {
        "POSTROOM_MAIL_ENABLED": "true",
        "POSTROOM_MAIL_HOST": server.host,
        "POSTROOM_MAIL_PORT": str(server.port),
        "POSTROOM_MAIL_ADMINS": "ops@example.org",
    }
    for args in (
        ("alice", "--name", "Alice Liddell", "--email", "alice@example.org"),
        ("bob", "--name", "Bob Ray", "--email", "bob@example.org"),
    ):
        done = run_postroom(home, "user", "add", *args, env=env)
        assert done.code == 0, done.output
    return env


@pytest.fixture
def service(tmp_path: Path, smtp_server: SMTPServer) -> Iterator[Service]:
    env = setup_home(tmp_path, smtp_server)
    with running_service(tmp_path, env=env) as running:
        # web.public_url is where unsubscribe links point: this service.
        yield running


def test_serve_mails_server_up_at_start_and_server_down_at_a_clean_stop(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    env = setup_home(tmp_path, smtp_server)
    with running_service(tmp_path, env=env):
        wait_until(lambda: smtp_server.messages, timeout=15)
        assert [m["Subject"] for _, m in mails(smtp_server)] == [
            f"postroom on {__import__('socket').gethostname()} is up"
        ]
    # The down mail is handed on before the worker stops.
    subjects = [m["Subject"] for _, m in mails(smtp_server)]
    assert subjects[-1].endswith("is down")
    assert [r for r, _ in mails(smtp_server)] == [["ops@example.org"], ["ops@example.org"]]


def test_post_events_queues_the_mail_and_a_bad_payload_is_422_naming_the_field(
    service: Service, smtp_server: SMTPServer
) -> None:
    token = service.token("app", scope="send")
    with service.client(token) as client:
        wait_until(lambda: smtp_server.messages, timeout=15)  # server.up to ops
        smtp_server.messages.clear()
        before = client.get("/api/v1/messages", headers=service.bearer(service.token("a"))).json()
        ok = client.post(
            "/api/v1/events",
            json={
                "type": "comment.created",
                "actor": "bob",
                "data": {"object": IMAGE, "text": "hi"},
            },
        )
        missing = client.post(
            "/api/v1/events",
            json={"type": "comment.created", "data": {"object": {"kind": "image"}}},
        )
        extra = client.post(
            "/api/v1/events", json={"type": "group.created", "data": {"name": "g", "colour": 1}}
        )
        unknown = client.post("/api/v1/events", json={"type": "comment.deleted", "data": {}})
        after = client.get("/api/v1/messages", headers=service.bearer(service.token("a"))).json()
    assert ok.status_code == 202
    assert ok.json()["recipients"] == 1
    assert len(ok.json()["ids"]) == 1
    assert (missing.status_code, missing.json()["error"]["field"]) == (422, "data.object.id")
    assert "field object.id" in missing.json()["error"]["message"]
    assert (extra.status_code, extra.json()["error"]["field"]) == (422, "data.colour")
    assert (unknown.status_code, unknown.json()["error"]["field"]) == (422, "type")
    assert len(after["items"]) == len(before["items"]) + 1  # only the good one
    wait_until(lambda: smtp_server.messages, timeout=15)
    ((rcpts, message),) = mails(smtp_server)
    assert rcpts == ["alice@example.org"]
    assert message["From"].addresses[0].display_name == "Bob Ray (no-reply)"


def test_password_reset_answers_the_same_for_known_and_unknown_addresses(
    service: Service, tmp_path: Path
) -> None:
    answers = []
    with service.client(service.token("app", scope="send")) as client:
        for email in ("bob@example.org", "nobody@example.org"):
            reply = client.post(
                "/api/v1/events",
                json={"type": "password.reset", "data": {"email": email, "url": "https://r/1"}},
            )
            answers.append((reply.status_code, reply.content))
    assert answers[0] == answers[1] == (202, b'{"type":"password.reset","ids":[]}')
    shell = [
        run_postroom(
            tmp_path,
            "emit",
            "password.reset",
            "--data",
            f'{{"email": "{email}", "url": "https://r/1"}}',
            env=service.env,
        )
        for email in ("bob@example.org", "nobody@example.org")
    ]
    assert shell[0] == shell[1]
    assert shell[0].code == 0


def test_heartbeats_over_http_and_from_the_shell(service: Service, tmp_path: Path) -> None:
    with service.client(service.token("app", scope="send")) as client:
        beat = client.post("/api/v1/heartbeats/omero-1", json={"every": "2m"})
        bare = client.post("/api/v1/heartbeats/labkey")
        bad = client.post("/api/v1/heartbeats/omero-1", json={"every": "soon"})
    assert beat.json() == {"name": "omero-1", "every": 120.0, "recovered": False}
    assert bare.json()["every"] == 60.0
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "every")
    done = run_postroom(tmp_path, "heartbeat", "omero-1", "--every", "30s", env=service.env)
    assert (done.code, done.output) == (0, "")
    wrong = run_postroom(tmp_path, "heartbeat", "omero-1", "--every", "-5", env=service.env)
    assert wrong.code == 2
    assert "--every" in wrong.stderr
    stopped = run_postroom(tmp_path, "heartbeat", "omero-1", "--stop", env=service.env)
    assert stopped.code == 0
    assert "no mail" in stopped.stdout
    with service.client(service.token("app", scope="send")) as client:
        assert client.delete("/api/v1/heartbeats/labkey").status_code == 204
        assert client.delete("/api/v1/heartbeats/labkey").status_code == 404
    again = run_postroom(tmp_path, "heartbeat", "omero-1", "--stop", env=service.env)
    assert again.code == 2
    assert "nothing to stop" in again.stderr


def test_prefs_api_needs_an_admin_token_and_refuses_security_types(service: Service) -> None:
    with service.client(service.token("admin")) as admin:
        put = admin.put("/api/v1/users/bob/prefs", json={"off": ["comment.created", "server.up"]})
        back_on = admin.put("/api/v1/users/bob/prefs", json={"on": ["server.up"]})
        security = admin.put("/api/v1/users/bob/prefs", json={"off": ["password.reset"]})
        got = admin.get("/api/v1/users/bob/prefs")
        ghost = admin.get("/api/v1/users/ghost/prefs")
    with service.client(service.token("app", scope="send")) as sender:
        forbidden = sender.get("/api/v1/users/bob/prefs")
    assert put.json()["off"] == ["comment.created", "server.up"]
    assert back_on.json()["off"] == ["comment.created"]
    assert security.status_code == 422
    assert "cannot be switched off" in security.json()["error"]["message"]
    assert got.json()["off"] == ["comment.created"]
    assert "server.up" in got.json()["on"]
    assert ghost.status_code == 404
    assert forbidden.status_code == 403


def test_one_click_unsubscribe_from_a_delivered_mail(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    env = setup_home(tmp_path, smtp_server)
    port_env = {**env}
    with running_service(tmp_path, env=port_env) as service:
        with service.client(service.token("app", scope="send")) as client:
            client.post(
                "/api/v1/events",
                json={"type": "comment.created", "actor": "bob",
                      "data": {"object": IMAGE, "text": "x"}},
            )  # fmt: skip
        wait_until(lambda: any(r == ["alice@example.org"] for r, _ in mails(smtp_server)), 15)
        message = next(m for r, m in mails(smtp_server) if r == ["alice@example.org"])
        link = re.fullmatch(r"<(\S+)>", message["List-Unsubscribe"])
        assert link is not None
        # The link points at web.public_url (here: http://web.bind, the service itself).
        url = link.group(1)
        assert url.startswith(service.url + "/unsubscribe/")
        assert url in text_of(message)
        page = httpx.get(url)  # what a person's click, or a link scanner, does
        prefs = lambda: run_postroom(tmp_path, "user", "prefs", "alice", "--json", env=env)  # noqa: E731
        assert page.status_code == 200
        assert "Stop comment.created mail?" in page.text
        assert '"off": []' in prefs().stdout  # GET changed nothing
        clicked = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
        assert clicked.status_code == 200
        assert "no longer gets" in clicked.text
        assert '"comment.created"' in prefs().stdout
        bob = run_postroom(tmp_path, "user", "prefs", "bob", "--json", env=env)
        assert '"off": []' in bob.stdout
        tampered = httpx.post(url[:-3] + "AAA", data={"List-Unsubscribe": "One-Click"})
        assert tampered.status_code == 400
        assert "not valid" in tampered.text


def test_templates_check_names_template_line_and_variable_and_start_refuses(
    tmp_path: Path,
) -> None:
    assert run_postroom(tmp_path, "templates", "check").code == 0
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "comment.created.txt").write_text("Hello\n{{ object.title }} by {{ author }}\n")
    done = run_postroom(tmp_path, "templates", "check")
    assert done.code == 2
    assert "comment.created.txt, line 2: unknown variable 'author'" in done.stderr
    worker = run_postroom(tmp_path, "worker", "--once")
    assert worker.code == 2
    assert "comment.created.txt, line 2" in worker.stderr
    assert "Traceback" not in worker.output
    (overrides / "comment.created.txt").write_text("{{ object.colour }}\n")
    attribute = run_postroom(tmp_path, "templates", "check")
    assert attribute.code == 2
    assert "comment.created.txt, line 1" in attribute.stderr
    assert "colour" in attribute.stderr
    (overrides / "comment.created.txt").write_text("Custom: {{ object.title }}\n")
    assert run_postroom(tmp_path, "templates", "check").code == 0
    shown = run_postroom(tmp_path, "templates", "render", "comment.created")
    assert shown.code == 0
    assert "Custom: Plate 7, well B3" in shown.stdout
    html = run_postroom(
        tmp_path,
        "templates", "render", "group.created", "--html", "--data", '{"name": "<b>x</b>"}',
    )  # fmt: skip
    subject, _, page = html.stdout.partition("\n")
    assert subject == "Subject: New group: <b>x</b>"  # a subject is text, never HTML
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page


def test_emit_from_the_shell_prints_json_and_exits_2_on_bad_input(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    env = setup_home(tmp_path, smtp_server)
    data = tmp_path / "event.json"
    data.write_text('{"object": {"kind": "image", "id": 7, "owner": "alice"}, "text": "hi"}')
    ok = run_postroom(tmp_path, "emit", "comment.created", "--actor", "bob", "--data", f"@{data}",
                      env=env)  # fmt: skip
    assert ok.code == 0, ok.output
    assert '"recipients": 1' in ok.stdout
    for args, says in [
        (("comment.created", "--data", "{not json"), "not valid JSON"),
        (("comment.created", "--data", "[1]"), "must be a JSON object"),
        (("comment.created", "--data", "@/nonexistent.json"), "readable JSON file"),
        (("comment.deleted",), "unknown event type"),
        (("message", "--data", '{"subject": ""}'), "field subject"),
    ]:
        bad = run_postroom(tmp_path, "emit", *args, env=env)
        assert bad.code == 2, bad.output
        assert says in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
