"""``jingzhun dlq list|show|redrive``: the dead letters of benefits and audit, over HTTP.

Like ``jingzhun policy``, it talks to the running services, not to their databases: a redrive must run in
the process that holds the consumer's handler and keys, and it is the same path as any other client's
(``/v1/admin/dead-letters``, scope ``admin``).
"""
from __future__ import annotations

import json
import os
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from shared.config import DEFAULT_PORTS, CommonSettings

SERVICES = ("benefits", "audit")  # the services that consume events and keep dead letters
PAGE = 500

dlq_app = typer.Typer(help="Dead letters of the benefits and audit consumers: list, show, redrive (admin).",
                      no_args_is_help=True)
console = Console()

_SERVICE = typer.Option(None, "--service", "-s", help="benefits or audit (list: both when omitted)")
_URL = typer.Option(None, "--url", help="The service's base URL (default: JZ_<SERVICE>_URL, else "
                                        "http://127.0.0.1:<its default port>); needs --service")
_TOKEN = typer.Option(None, "--token", help="An admin token (default: JZ_TOKEN, else one minted by the "
                                            "development issuer, embedded profile only)")


def base_url(service: str, url: Optional[str] = None) -> str:
    return url or os.environ.get(f"JZ_{service.upper()}_URL") or f"http://127.0.0.1:{DEFAULT_PORTS[service]}"


def admin_token(token: Optional[str]) -> str:
    token = token or os.environ.get("JZ_TOKEN")
    if token:
        return token
    from shared.auth import DevIssuerRefused, mint_token
    try:
        return mint_token(CommonSettings(), "admin", subject=f"cli:{os.environ.get('USER', 'operator')}", ttl_s=600)
    except DevIssuerRefused as exc:
        typer.echo(f"jingzhun dlq: {exc}; pass --token or set JZ_TOKEN to an admin token", err=True)
        raise typer.Exit(2) from exc


def client(service: str, url: Optional[str], token: Optional[str]):
    """An httpx client for one service (tests replace this)."""
    import httpx
    return httpx.Client(base_url=base_url(service, url), headers={"Authorization": f"Bearer {admin_token(token)}"},
                        timeout=60)


def _services(service: Optional[str], url: Optional[str], *, one: bool) -> list[str]:
    if service is not None and service not in SERVICES:
        raise typer.BadParameter(f"{service!r}: one of {', '.join(SERVICES)}", param_hint="--service")
    if service is None and (one or url):
        raise typer.BadParameter("name the service (benefits or audit): ids are per service", param_hint="--service")
    return [service] if service else list(SERVICES)


def _call(http, service: str, method: str, path: str, **kwargs):
    """(status, body); exits 2 when the service cannot be reached, 1 on an error other than ``ok``."""
    import httpx
    try:
        response = http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"jingzhun dlq: {service} not reachable at {http.base_url} ({exc}); start it (jingzhun run), "
                   f"or pass --url / set JZ_{service.upper()}_URL", err=True)
        raise typer.Exit(2) from exc
    body = response.json() if response.headers.get("content-type", "").endswith("json") else {"detail": response.text}
    return response.status_code, body


def _fail(service: str, status: int, body: dict) -> None:
    console.print(f"[red]{service}: {status} {body.get('title', '')}[/red] {body.get('detail', '')}", highlight=False)
    raise typer.Exit(1)


def _open_items(http, service: str, status: str, topic: Optional[str], limit: Optional[int]) -> list[dict]:
    """Every item of the list (page by page), at most ``limit``."""
    items: list[dict] = []
    cursor = None
    while limit is None or len(items) < limit:
        params = {"status": status, "limit": PAGE if limit is None else min(PAGE, limit - len(items))}
        if topic:
            params["topic"] = topic
        if cursor:
            params["cursor"] = cursor
        code, body = _call(http, service, "GET", "/v1/admin/dead-letters", params=params)
        if code != 200:
            _fail(service, code, body)
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return items


@dlq_app.command("list")
def dlq_list(service: Optional[str] = _SERVICE, status: str = typer.Option("open", help="open, redriven or all"),
             topic: Optional[str] = typer.Option(None, help="Only this source topic, e.g. jz.registry.v1"),
             limit: Optional[int] = typer.Option(None, min=1, help="At most this many per service"),
             as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
             url: Optional[str] = _URL, token: Optional[str] = _TOKEN) -> None:
    """The dead letters (open ones by default): id, group, source position, event, error, outcome."""
    rows = []
    for name in _services(service, url, one=False):
        with client(name, url, token) as http:
            rows += [(name, item) for item in _open_items(http, name, status, topic, limit)]
    if as_json:
        for name, item in rows:
            typer.echo(json.dumps({"service": name, **item}, ensure_ascii=False))
        return
    table = Table(title=f"dead letters ({status})", show_lines=False)
    for column in ("service", "id", "group", "source", "event", "dead-lettered", "error", "outcome"):
        table.add_column(column, overflow="fold")
    for name, item in rows:
        table.add_row(name, str(item["id"]), item["consumer_group"],
                      f"{item['topic']}@{item['partition']}/{item['offset']}",
                      " ".join(filter(None, (item.get("event_type"), item.get("subject")))) or "-",
                      (item.get("dead_lettered_at") or "")[:19], (item.get("error") or "")[:160],
                      item.get("redrive_outcome") or "-")
    console.print(table)
    console.print(f"{len(rows)} dead letter(s)", highlight=False)


@dlq_app.command("show")
def dlq_show(dead_letter_id: int = typer.Argument(..., min=1, help="The id from `jingzhun dlq list`"),
             service: Optional[str] = _SERVICE, url: Optional[str] = _URL, token: Optional[str] = _TOKEN) -> None:
    """One dead letter: where it came from, the error, its headers and the message (ID numbers masked)."""
    [name] = _services(service, url, one=True)
    with client(name, url, token) as http:
        code, body = _call(http, name, "GET", f"/v1/admin/dead-letters/{dead_letter_id}")
    if code != 200:
        _fail(name, code, body)
    console.print_json(json.dumps(body, ensure_ascii=False))


@dlq_app.command("redrive")
def dlq_redrive(dead_letter_id: Optional[int] = typer.Argument(None, min=1, help="The id from `jingzhun dlq list`"),
                all_open: bool = typer.Option(False, "--all-open", help="Every open dead letter of the service"),
                service: Optional[str] = _SERVICE, url: Optional[str] = _URL, token: Optional[str] = _TOKEN) -> None:
    """Send a dead letter through the consumer's normal handler again (exit 1 if one fails again)."""
    if (dead_letter_id is None) == (not all_open):
        raise typer.BadParameter("give one ID or --all-open")
    [name] = _services(service, url, one=True)
    with client(name, url, token) as http:
        ids = [dead_letter_id] if dead_letter_id is not None else [
            item["id"] for item in _open_items(http, name, "open", None, None)]
        counts = {"applied": 0, "already applied": 0, "failed": 0}
        for one in ids:
            code, body = _call(http, name, "POST", f"/v1/admin/dead-letters/{one}:redrive")
            if code == 200:
                counts[body["outcome"]] = counts.get(body["outcome"], 0) + 1
                console.print(f"{name} {one}: [green]{body['outcome']}[/green] at {body['redriven_at']}",
                              highlight=False)
            elif code == 409:
                counts["failed"] += 1
                console.print(f"{name} {one}: [red]failed again[/red] {body.get('error', body.get('detail', ''))}",
                              highlight=False)
            else:
                _fail(name, code, body)
    if all_open:
        console.print(f"{name}: {len(ids)} open dead letter(s) redriven: {counts['applied']} applied, "
                      f"{counts['already applied']} already applied, {counts['failed']} failed again", highlight=False)
    if counts["failed"]:
        raise typer.Exit(1)
