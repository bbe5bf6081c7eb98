"""``postroom oauth authorize``: get and store a refresh token (Google, generic)."""

from __future__ import annotations

from typing import Annotated

import typer

from postroom.cli.common import fail, out, state, warn
from postroom.errors import EXIT_FAILED, TransportError
from postroom.runtime import oauth_flow
from postroom.runtime.settings import change_settings

app = typer.Typer(help="OAuth2 for sending mail (see docs/oauth.md).")


@app.command("authorize")
def authorize(
    ctx: typer.Context,
    provider: Annotated[
        str, typer.Option("--provider", help="google or generic (Microsoft needs no step).")
    ] = "google",
    auth_url: Annotated[
        str,
        typer.Option("--auth-url", help="Consent page; default: the provider's (Google's)."),
    ] = "",
    port: Annotated[
        int, typer.Option("--port", help="Loopback port of the redirect; 0: any free one.")
    ] = 0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the browser.")
    ] = 300.0,
) -> None:
    """Run the installed-app flow: open the printed URL in a browser, consent, and the
    refresh token is stored as mail.oauth.refresh_token in postroom.toml (mode 0600).

    Needs mail.oauth.client_id and mail.oauth.client_secret (a "Desktop app" OAuth
    client). The browser must reach 127.0.0.1 on this machine: on a server without
    one, forward the port (ssh -L PORT:127.0.0.1:PORT) and give --port.
    """
    if provider == "microsoft":
        fail(
            "Microsoft needs no authorize step: postroom uses the app's client credentials "
            "(mail.oauth.tenant_id, client_id, client_secret; see docs/oauth.md)"
        )
    if provider not in ("google", "generic"):
        fail(f"--provider must be google or generic, not {provider!r}")
    cli = state(ctx)
    cli.home.ensure()
    cli.flags = {**cli.flags, "mail.oauth.provider": provider}
    cli.reload()
    mail = cli.config().settings.mail
    missing = [
        key
        for key, value in (
            ("mail.oauth.client_id", mail.oauth_client_id),
            ("mail.oauth.client_secret", mail.oauth_client_secret.reveal()),
            ("mail.oauth.token_url", mail.oauth_token_url or provider == "google"),
        )
        if not value
    ]
    if missing:
        fail(f"set {', '.join(missing)} first (postroom config set KEY VALUE)")
    consent_page = auth_url or oauth_flow.AUTHORIZATION_URLS.get(provider, "")
    if not consent_page:
        fail("give --auth-url: the generic provider's consent page")
    try:
        redirect = oauth_flow.LoopbackRedirect(port)
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); give another --port")
    try:
        flow = oauth_flow.start(mail, redirect.uri, consent_page)
        out.print("Open this URL in a browser and consent:")
        out.print(flow.url, soft_wrap=True, markup=False)
        out.print(f"Waiting for the redirect to {redirect.uri} ...")
        callback = redirect.wait(timeout)
    finally:
        redirect.close()
    if callback is None:
        warn(f"no answer from the browser within {timeout:g}s; run the command again")
        raise typer.Exit(EXIT_FAILED)
    try:
        refresh_token = oauth_flow.finish(mail, flow, callback)
    except TransportError as exc:
        warn(str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    change_settings(
        cli.home,
        set_values={"mail.oauth.provider": provider, "mail.oauth.refresh_token": refresh_token},
    )
    out.print(
        f"Stored mail.oauth.refresh_token in {cli.home.config_file} (mode 0600). Next: "
        "postroom config set mail.auth xoauth2, then postroom test-email --to ADDRESS"
    )
