"""The ``jingzhun`` command line."""
from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from shared.config import SERVICES, CommonSettings, service_settings

app = typer.Typer(help="Jingzhun (精准): registry, benefits engine and audit ledger.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit ledger commands.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
console = Console()

COLOURS = {"registry": "cyan", "benefits": "green", "audit": "magenta", "relay": "yellow", "broker": "blue",
           "launcher": "bold white"}


@app.command()
def token(scopes: str = typer.Option(..., help='Space-separated scopes, e.g. "registry:read registry:write"'),
          area: Optional[str] = typer.Option(None, help="Administrative code prefix the token is limited to"),
          subject: str = typer.Option("dev-user", help="Token subject (e.g. a cadre id)"),
          ttl_hours: int = typer.Option(12, help="Lifetime in hours")) -> None:
    """Print a development token accepted by all three services in the embedded profile."""
    from shared.auth import mint_token
    try:
        typer.echo(mint_token(CommonSettings(), scopes, subject=subject, area=area, ttl_s=ttl_hours * 3600))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command()
def migrate(service: Optional[str] = typer.Argument(None, help="registry, benefits or audit (default: all)")) -> None:
    """Upgrade each service's database to the newest migration."""
    from shared.db import make_engine
    from shared.migrate import upgrade_to_head

    async def run() -> None:
        for name in [service] if service else SERVICES:
            settings = service_settings(name)
            engine = make_engine(settings.resolved_database_url())
            try:
                await upgrade_to_head(name, engine)
            finally:
                await engine.dispose()
            console.print(f"[green]migrated[/green] {name}: {settings.resolved_database_url()}")

    asyncio.run(run())


@app.command("demo-data")
def demo_data(count: int = typer.Option(200, help="Households to load")) -> None:
    """Load the demo district into the registry (idempotent: existing households are kept)."""
    from jingzhun_cli.demo import demo_households
    from services.registry.households.service import create_household
    from services.registry.tables import households
    from shared.auth import Principal
    from shared.db import make_engine, make_sessionmaker, transaction
    from shared.migrate import upgrade_to_head
    from sqlalchemy import select

    async def run() -> tuple[int, int]:
        settings = service_settings("registry")
        engine = make_engine(settings.resolved_database_url())
        await upgrade_to_head("registry", engine)
        sessionmaker = make_sessionmaker(engine)
        loader = Principal(subject="demo-data", scopes=frozenset({"admin"}))
        created = skipped = 0
        async with sessionmaker() as session:
            existing = set((await session.execute(select(households.c.id)
                                                  .where(households.c.id.like("hh-demo-%")))).scalars())
        for household_id, body in demo_households(count):
            if household_id in existing:
                skipped += 1
                continue
            async with transaction(sessionmaker) as session:
                await create_household(session, body, loader, household_id=household_id)
            created += 1
        await engine.dispose()
        return created, skipped

    created, skipped = asyncio.run(run())
    console.print(f"demo district: {created} households created, {skipped} already there")


@app.command()
def relay(replay: bool = typer.Option(False, help="First mark the retained outbox tail for republishing"),
          service: list[str] = typer.Option(["registry", "benefits"], help="Whose outbox to relay")) -> None:
    """Publish outbox rows to Kafka until stopped (SIGTERM drains first)."""
    from shared.db import make_engine
    from shared.logs import configure_logging
    from shared.outbox_relay import OutboxRelay

    common = CommonSettings()
    configure_logging("relay", common.log_level, common.log_json)

    async def run() -> None:
        relays = []
        for name in service:
            engine = make_engine(service_settings(name).resolved_database_url())
            relay_ = OutboxRelay(engine, service_settings(name), name=f"relay-{name}")
            if replay:
                count = await relay_.replay_retained()
                import logging
                logging.getLogger("relay").info("replaying %d retained %s outbox rows", count, name)
            relays.append(relay_)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: [r.stop() for r in relays])
        await asyncio.gather(*(r.run() for r in relays))
        for r in relays:
            await r.engine.dispose()

    asyncio.run(run())


@app.command()
def run(registry_port: int = typer.Option(8001), benefits_port: int = typer.Option(8002),
        audit_port: int = typer.Option(8003), broker_port: int = typer.Option(9092),
        external_kafka: Optional[str] = typer.Option(None, help="Use this Kafka bootstrap instead of Tansu"),
        var_dir: Path = typer.Option(Path(os.environ.get("JZ_VAR_DIR", "var")))) -> None:
    """Run broker, relay and the three services; one log stream; Ctrl-C stops everything in order."""
    from shared.launcher import LaunchConfig, LaunchError, SystemLauncher

    def sink(name: str, line: str) -> None:
        prefix = Text(f"{name:<9}│ ", style=COLOURS.get(name, "white"))
        console.print(prefix + Text(line), soft_wrap=True, highlight=False)

    config = LaunchConfig(var_dir=var_dir, ports={"registry": registry_port, "benefits": benefits_port,
                                                  "audit": audit_port},
                          broker_port=broker_port, external_bootstrap=external_kafka, log_sink=sink,
                          database_urls={s: u for s in SERVICES
                                         if (u := os.environ.get(f"JZ_{s.upper()}_DATABASE_URL"))})
    launcher = SystemLauncher(config)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await launcher.start()
        except LaunchError as exc:
            sink("launcher", f"start failed: {exc}")
            return 1
        console.print()
        console.print("[bold]Jingzhun is running[/bold] (Ctrl-C stops everything in order):")
        for service in SERVICES:
            console.print(f"  {service:<9} {launcher.url(service)}/docs")
        console.print(f"  broker    {config.bootstrap}")
        console.print('  token:    .venv/bin/jingzhun token --scopes "admin"')
        console.print()
        watcher = asyncio.create_task(_watch(launcher, stop))
        await stop.wait()
        watcher.cancel()
        sink("launcher", "stopping: registry → drain outboxes → consumers catch up → services → broker")
        await launcher.shutdown()
        sink("launcher", "stopped")
        return getattr(launcher, "exit_code", 0)

    raise typer.Exit(asyncio.run(main()))


async def _watch(launcher, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            launcher.check_alive()
        except Exception as exc:  # noqa: BLE001
            launcher.exit_code = 1
            console.print(f"[red]{exc}[/red]; stopping")
            stop.set()
            return
        await asyncio.sleep(0.5)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute every hash chain of the audit ledger."""
    from services.audit.ledger.service import verify_ledger
    from shared.db import make_engine, make_sessionmaker

    async def run() -> dict:
        settings = service_settings("audit")
        engine = make_engine(settings.resolved_database_url())
        try:
            return await verify_ledger(make_sessionmaker(engine), settings.hash_algorithm)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    console.print_json(json.dumps(result))
    raise typer.Exit(0 if result["ok"] else 2)


if __name__ == "__main__":
    app()
