"""The ``jingzhun`` command line."""
from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from shared.config import SERVICES, CommonSettings, service_settings

app = typer.Typer(help="Jingzhun (精准): registry, benefits engine and audit ledger.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit ledger commands.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
from jingzhun_cli.dlq import dlq_app  # noqa: E402 - beside its registration
app.add_typer(dlq_app, name="dlq")
from jingzhun_cli.monitoring import monitoring_app  # noqa: E402 - beside its registration
app.add_typer(monitoring_app, name="monitoring")
console = Console()

COLOURS = {"registry": "cyan", "benefits": "green", "audit": "magenta", "relay": "yellow", "broker": "blue",
           "launcher": "bold white"}


@app.command()
def token(scopes: str = typer.Option(..., help='Space-separated scopes, e.g. "registry:read registry:write"'),
          area: Optional[str] = typer.Option(None, help="Administrative code prefix the token is limited to"),
          subject: str = typer.Option("dev-user", help="Token subject (e.g. a cadre id)"),
          ttl_hours: int = typer.Option(12, help="Lifetime in hours")) -> None:
    """Print a development token accepted by all three services in the embedded profile (refused in production)."""
    from shared.auth import DevIssuerRefused, mint_token
    try:
        typer.echo(mint_token(CommonSettings(), scopes, subject=subject, area=area, ttl_s=ttl_hours * 3600))
    except DevIssuerRefused as exc:
        typer.echo(f"jingzhun token: {exc}", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command("event-keys")
def event_keys(keys_dir: Path = typer.Option(..., help="Holds <dir>/<service>/events.pem (0600) per service"),
               keyring: Path = typer.Option(..., help="The JSON keyring of public keys (JZ_EVENT_TRUSTED_KEYS_FILE)"),
               service: list[str] = typer.Option([], help="A service to hold a key (repeat; default all three)"),
               rotate: list[str] = typer.Option([], help="Give this service a new key; the old one stays in the "
                                                         "keyring as retired, so old records still verify")) -> None:
    """Create or rotate the production event-signing keys and the keyring (the same as python -m shared.signing)."""
    from shared.signing import init_deployment_keys
    unknown = sorted((set(service) | set(rotate)) - set(SERVICES))
    if unknown:
        raise typer.BadParameter(f"unknown service(s): {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    for key in init_deployment_keys(keys_dir, keyring, service or list(SERVICES), rotate):
        typer.echo(f"{key.signer}\t{key.source}\t{'retired' if key.retired else 'current'}")


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
    """Load the demo district into the registry: areas (population, incidence), cadres, households and
    their 2016-2020 pairings, visits and exits (idempotent: a second run adds nothing)."""
    from jingzhun_cli.demo import load_demo_district
    from shared.db import make_engine, make_sessionmaker
    from shared.migrate import upgrade_to_head

    async def run():
        settings = service_settings("registry")
        engine = make_engine(settings.resolved_database_url())
        try:
            await upgrade_to_head("registry", engine)
            return await load_demo_district(make_sessionmaker(engine), settings, count=count)
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    areas = report.areas
    console.print(f"demo district: {report.households_created} households created, "
                  f"{report.households_existing} already there; areas {areas.get('created', 0)} created, "
                  f"{areas.get('updated', 0)} updated, {areas.get('unchanged', 0)} unchanged; "
                  f"{report.cadres_created} cadres, {report.pairings} pairings, {report.unpairings} unpairings, "
                  f"{report.visits} visits, {report.transitions} procedure steps, {report.other_steps} member changes")


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
        var_dir: Path = typer.Option(Path(os.environ.get("JZ_VAR_DIR", "var"))),
        max_start_failures: int = typer.Option(
            5, min=1, help="A child that exits this many times in a row without becoming healthy stops the system"),
        broker_restart_delay: float = typer.Option(
            2.0, min=0, help="Seconds before a dead broker is restarted (the relay's in-flight sends time out)"),
        signin_port: int = typer.Option(
            8009, min=0, help="Port of the development sign-in provider (deploy/oidc-dev); 0: do not start it")) -> None:
    """Run broker, relay and the three services; one log stream; a dead child is restarted with backoff.

    Exits 0 on Ctrl-C/SIGTERM (ordered shutdown), 1 when a child cannot start at all.
    """
    from shared.launcher import LaunchConfig, LaunchError, SystemLauncher

    def sink(name: str, line: str) -> None:
        prefix = Text(f"{name:<9}│ ", style=COLOURS.get(name, "white"))
        console.print(prefix + Text(line), soft_wrap=True, highlight=False)

    config = LaunchConfig(var_dir=var_dir, ports={"registry": registry_port, "benefits": benefits_port,
                                                  "audit": audit_port},
                          broker_port=broker_port, external_bootstrap=external_kafka, log_sink=sink,
                          child_stream=sys.stdout,  # children's lines pass straight through (issue 15)
                          database_urls={s: u for s in SERVICES
                                         if (u := os.environ.get(f"JZ_{s.upper()}_DATABASE_URL"))},
                          max_start_failures=max_start_failures, broker_restart_delay_s=broker_restart_delay,
                          signin_port=signin_port or None)
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
        for line in config.evaluation_date_lines():  # the policy date answers are judged on, and who set it
            console.print(f"  {line}", highlight=False)
        console.print(f"  broker    {config.bootstrap}")
        console.print('  token:    .venv/bin/jingzhun token --scopes "admin"')
        if config.signin_port:  # still set: the development sign-in provider runs
            from shared.signin_dev import banner_lines
            for line in banner_lines(config.signin_port):
                console.print(f"  {line}", highlight=False)
        console.print(f"  children: {config.launcher_file} (pids, restarts)")
        console.print()
        await _watch(launcher, stop)
        sink("launcher", "stopping: registry → drain outboxes → consumers catch up → services → broker")
        await launcher.shutdown()
        sink("launcher", "stopped")
        return launcher.exit_code

    raise typer.Exit(asyncio.run(main()))


async def _watch(launcher, stop: asyncio.Event) -> None:
    """Until Ctrl-C/SIGTERM, or until a child cannot start at all (the launcher restarts every other exit
    and says so in the log stream); then the caller shuts the rest down in order."""
    asked = asyncio.create_task(stop.wait())
    failed = asyncio.create_task(launcher.failed.wait())
    try:
        await asyncio.wait({asked, failed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        asked.cancel()
        failed.cancel()
    if launcher.failure is not None:
        launcher.exit_code = 1
        console.print(f"[red]{launcher.failure.args[0].splitlines()[0]}[/red]; stopping the rest", highlight=False)


@app.command()
def recompute(scope: str = typer.Option("all", help="all | region | village"),
              code: Optional[str] = typer.Option(None, help="Administrative code (region prefix or village code)"),
              as_of: Optional[str] = typer.Option(None, help="Policy date YYYY-MM-DD (default: the benefits "
                                                             "evaluation date, else today)"),
              batch_size: int = typer.Option(500, help="Households per transaction"),
              resume: Optional[str] = typer.Option(None, help="Resume this job id instead of starting one")) -> None:
    """Bulk-recompute entitlements after a policy change, against the benefits database.

    Runs here, batch by batch; Ctrl-C leaves a resumable job (``--resume ID``, or the benefits
    service resumes unfinished jobs when it starts). Decisions go to the benefits outbox.
    """
    import datetime as dt

    from pydantic import ValidationError

    from services.benefits.app import load_policy_packs
    from services.benefits.consumer import evaluation_date
    from services.benefits.recompute.scope import Scope
    from services.benefits.recompute.service import create_job, get_job, resume_failed_job, run_job
    from shared.db import make_engine, make_sessionmaker, transaction
    from shared.migrate import upgrade_to_head

    settings = service_settings("benefits")
    try:
        job_scope = Scope(kind=scope, code=code)
        policy_date = dt.date.fromisoformat(as_of) if as_of else evaluation_date(settings)
    except (ValidationError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    packs = load_policy_packs(settings)

    def progress(job: dict) -> None:
        console.print(f"  {job['processed']:>9}/{job['total']} households, {job['households_changed']} changed, "
                      f"{job['decisions']} decisions (last {job['last_household_id']})", highlight=False)

    async def run() -> dict:
        engine = make_engine(settings.resolved_database_url())
        try:
            if settings.should_auto_migrate():
                await upgrade_to_head("benefits", engine)
            sessionmaker = make_sessionmaker(engine)
            async with transaction(sessionmaker) as session:
                if resume:
                    job = await get_job(session, resume)
                    if job is None:
                        raise typer.BadParameter(f"no recompute job {resume}")
                    await resume_failed_job(session, resume)
                else:
                    job = await create_job(session, job_scope, policy_date, batch_size=batch_size,
                                           requested_by="cli")
            console.print(f"recompute job [bold]{job['id']}[/bold] scope {job['scope']} as of {job['as_of']}: "
                          f"{job['total']} households")
            return await run_job(sessionmaker, job["id"], packs, on_batch=progress)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    console.print_json(json.dumps(result))
    raise typer.Exit(0 if result["status"] == "done" else 2)


import_app = typer.Typer(help="Load administrative areas and household ledgers (台账) into the registry.",
                         no_args_is_help=True)
export_app = typer.Typer(help="Export registry data in the ledger format.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")


def _registry_sessionmaker():
    """The registry's database (JZ_REGISTRY_DATABASE_URL or var/registry.db), migrated to head."""
    from shared.db import make_engine, make_sessionmaker
    from shared.migrate import upgrade_to_head

    async def open_() -> tuple:
        settings = service_settings("registry")
        engine = make_engine(settings.resolved_database_url())
        await upgrade_to_head("registry", engine)
        return engine, make_sessionmaker(engine)
    return open_


def _cli_principal():
    from shared.auth import Principal
    return Principal(subject=f"cli:{os.environ.get('USER', 'office')}", scopes=frozenset({"admin"}))


def _print_report_errors(errors: list[dict], limit: int = 30, title: str = "problem(s)") -> None:
    from rich.table import Table
    table = Table("row", "column", "message", title=f"{len(errors)} {title}")
    for error in errors[:limit]:
        where = f"{error['sheet']}!{error['row']}" if error.get("sheet") else str(error["row"])
        table.add_row(where, error["column"], error["message"])
    console.print(table)
    if len(errors) > limit:
        console.print(f"… and {len(errors) - limit} more (--report FILE writes them all)")


def _print_update_results(result: dict, limit: int = 30) -> None:
    from rich.table import Table
    shown = [r for r in result.get("results", []) if r["outcome"] != "unchanged"]
    if not shown:
        return
    table = Table("row", "household", "outcome", "matched by", "changed paths",
                  title="households created, changed or in conflict")
    for item in shown[:limit]:
        paths = ", ".join(item["changed_paths"][:8]) + (" …" if len(item["changed_paths"]) > 8 else "")
        table.add_row(str(item["row"]), item["household_id"], item["outcome"], item["matched_by"] or "", paths)
    console.print(table)
    if len(shown) > limit:
        console.print(f"… and {len(shown) - limit} more (--report FILE writes them all)")


@import_app.command("areas")
def import_areas(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV or XLSX of areas")) -> None:
    """Load administrative areas (province → … → village → group, with flags); all or nothing."""
    from services.registry.villages.service import load_areas
    from shared.db import transaction
    from shared.problems import Problem

    async def run() -> dict:
        engine, sessionmaker = await _registry_sessionmaker()()
        try:
            async with transaction(sessionmaker) as session:
                return await load_areas(session, file.read_bytes(), file.name, _cli_principal())
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(run())
    except Problem as problem:
        console.print(f"[red]{problem.title}[/red]: {problem.detail}")
        _print_report_errors(problem.extra.get("report", {}).get("errors", []))
        raise typer.Exit(1)
    console.print(f"areas: {result['rows']} rows: {result['created']} created, {result['updated']} updated, "
                  f"{result['unchanged']} unchanged")


@import_app.command("households")
def import_households(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Ledger .xlsx or .csv"),
                      skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                                        help="Write the valid households even if some rows are bad"),
                      dry_run: bool = typer.Option(False, "--dry-run", help="Validate only"),
                      update: bool = typer.Option(False, "--update",
                                                  help="Yearly re-import: match households by 户编号 or the head's "
                                                       "ID number, write changes as new versions, create the new "
                                                       "ones"),
                      strict: bool = typer.Option(False, "--strict",
                                                  help="A header that names no ledger column is an error "
                                                       "(default: a warning)"),
                      report: Optional[Path] = typer.Option(None, help="Write the full report (JSON) here")) -> None:
    """Import a household ledger (台账): validate the whole file, then write all of it or nothing."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.registry.imports.service import import_ledger
    from shared.problems import Problem

    started = time.perf_counter()
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as progress:
        tasks: dict[str, int] = {}

        def tick(phase: str, advance: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task({"validate": "validating", "write": "writing"}[phase], total=total)
            progress.update(tasks[phase], advance=advance)

        async def run() -> dict:
            engine, sessionmaker = await _registry_sessionmaker()()
            try:
                return await import_ledger(sessionmaker, file.read_bytes(), file.name, _cli_principal(),
                                           skip_invalid=skip_invalid, dry_run=dry_run, progress=tick,
                                           mode="update" if update else "create", strict=strict)
            finally:
                await engine.dispose()

        try:
            result = asyncio.run(run())
            failed = None
        except Problem as problem:
            if "report" not in problem.extra:
                progress.stop()
                console.print(f"[red]{problem.title}[/red]: {problem.detail}")
                raise typer.Exit(1)
            result, failed = problem.extra["report"], problem
    if report:
        from shared.personal_data import private_output_file
        private_output_file(report).write_text(json.dumps(result, ensure_ascii=False, indent=2))
    seconds = time.perf_counter() - started
    if result.get("warnings"):
        _print_report_errors(result["warnings"], title="warning(s): columns not read / 未读取的列")
    if update:
        _print_update_results(result)
    if result["errors"]:
        _print_report_errors(result["errors"])
    if failed is not None:
        if failed.title == "Invalid ledger header":  # a file-level problem, not the households'
            console.print("[red]nothing written / 未写入[/red]: the header has problems, no row was read "
                          "(表头有问题，未读取任何行)")
        else:
            console.print(f"[red]nothing written / 未写入[/red]: {result['invalid_households']} of "
                          f"{result['households']} households have problems (fix them, or use --skip-invalid)")
        raise typer.Exit(1)
    verb = "would write" if dry_run else "wrote"
    counts = (f" (created {result['created']}, changed {result['changed']}, unchanged {result['unchanged']}"
              + (f", conflicts {result['conflict']}" if result["conflict"] else "") + ")") if update else ""
    written = (result["created"] + result["changed"] if update else result["valid_households"]) if dry_run \
        else result["written"]
    console.print(f"[green]{verb} {written} households[/green]{counts} "
                  f"from {result['rows']} rows in {seconds:.1f}s"
                  + (f"; skipped {result['invalid_households']} invalid" if result["invalid_households"] else "")
                  + (f"; import id {result['import_id']}" if result.get("import_id") else ""))


@export_app.command("households")
def export_households(file: Path = typer.Argument(..., dir_okay=False, help="Target .xlsx or .csv"),
                      village_code: Optional[str] = typer.Option(None), township_code: Optional[str] = typer.Option(None),
                      region_code: Optional[str] = typer.Option(None), status: Optional[str] = typer.Option(None)) -> None:
    """Export households in the ledger format (the format `import households` reads; every snapshot field).

    XLSX: sheets 台账, 农机购置 and 培训记录. CSV: one sheet, machinery and trainings as JSON in their columns.
    """
    from services.registry.imports.ledger import CSV_HEADER
    from services.registry.imports.service import export_rows, export_workbook
    from services.registry.imports.tabular import write_table

    filters = {"village_code": village_code, "township_code": township_code, "region_code": region_code,
               "status": status}

    async def run() -> int:
        from shared.personal_data import private_output_file
        private_output_file(file)  # clear ID numbers: owner-only (0600) before anything is written
        engine, sessionmaker = await _registry_sessionmaker()()
        try:
            if file.suffix.lower() == ".xlsx":
                return await export_workbook(sessionmaker, _cli_principal(), file, **filters)
            rows = [row async for row in export_rows(sessionmaker, _cli_principal(), **filters)]
        finally:
            await engine.dispose()
        write_table(file, CSV_HEADER, rows, "csv")
        return len(rows)

    console.print(f"exported {asyncio.run(run())} rows to {file}")


@export_app.command("sample-ledger")
def export_sample_ledger(file: Path = typer.Argument(..., dir_okay=False, help="Target .xlsx or .csv"),
                         rows: int = typer.Option(1000, help="About this many person rows (whole households)"),
                         seed: int = typer.Option(7, help="Same seed, same ledger; other seeds give other "
                                                         "household and ID numbers (LZ<seed>-…)")) -> None:
    """Write a generated, valid ledger of candidate households (for trying the import)."""
    from services.registry.imports.sample import generate_ledger
    from services.registry.imports.tabular import write_table

    header, table = generate_ledger(rows, seed=seed)
    write_table(file, header, table, "xlsx" if file.suffix.lower() == ".xlsx" else "csv")
    console.print(f"wrote {len(table)} rows to {file}")


@audit_app.command("verify")
def audit_verify(full: bool = typer.Option(False, "--full", help="Check every record's signature again, also "
                                           "those a verified checkpoint attests")) -> None:
    """Recompute every hash chain of the audit ledger, check every checkpoint and every record's origin."""
    from services.audit.ledger.service import verify_ledger
    from shared.db import make_engine, make_sessionmaker

    async def run() -> dict:
        settings = service_settings("audit")
        engine = make_engine(settings.resolved_database_url())
        try:
            return await verify_ledger(make_sessionmaker(engine), settings.hash_algorithm, full=full)
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    console.print_json(json.dumps(result))
    raise typer.Exit(0 if result["ok"] else 2)



partner_app = typer.Typer(help="Partner (bank, insurer, DCI consumer) OAuth2 clients of the benefits service.",
                          no_args_is_help=True)
app.add_typer(partner_app, name="partner")


@partner_app.command("create")
def partner_create(name: str = typer.Option(..., help="Partner name, e.g. the bank's"),
                   scope: list[str] = typer.Option(..., help="credit (bank), settlement (insurer) or dci (DCI "
                                                             "Social Registry consumer); repeatable"),
                   area: Optional[str] = typer.Option(None, help="Administrative code prefix (2-12 digits, e.g. "
                                                                 "360703) the client's tokens are limited to"),
                   output: str = typer.Option("json", "--format", help='json, or env: CLIENT_ID=… and CLIENT_SECRET=… '
                                                                        'lines for `eval "$(…)"` in a shell')) -> None:
    """Register a partner client in the benefits database; prints the client id and the secret (shown once)."""
    if output not in ("json", "env"):
        raise typer.BadParameter("--format is json or env")
    from services.benefits.partners.service import create_client
    from shared.db import make_engine, make_sessionmaker, transaction
    from shared.migrate import upgrade_to_head
    from shared.problems import Problem

    async def run() -> dict:
        settings = service_settings("benefits")
        engine = make_engine(settings.resolved_database_url())
        try:
            await upgrade_to_head("benefits", engine)
            async with transaction(make_sessionmaker(engine)) as session:
                return await create_client(session, name, [s for item in scope for s in item.split()], area)
        finally:
            await engine.dispose()

    try:
        client = asyncio.run(run())
    except Problem as exc:
        raise typer.BadParameter(exc.detail or exc.title) from exc
    if output == "env":
        # shlex.quote: the secret goes through a shell's eval.
        print(f"CLIENT_ID={shlex.quote(client['client_id'])}\nCLIENT_SECRET={shlex.quote(client['client_secret'])}")
        return
    console.print_json(json.dumps({"client_id": client["client_id"], "client_secret": client["client_secret"],
                                   "scopes": client["scopes"], "area": client["area"], "name": client["name"]}))

def _audit_run(work):
    """Run ``work(settings, sessionmaker)`` against the audit database (migrated first)."""
    from shared.db import make_engine, make_sessionmaker
    from shared.migrate import upgrade_to_head

    async def run():
        settings = service_settings("audit")
        engine = make_engine(settings.resolved_database_url())
        try:
            await upgrade_to_head("audit", engine)
            return await work(settings, make_sessionmaker(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Append a checkpoint committing to every chain head (Merkle root); print it for anchoring."""
    from services.audit.ledger.service import create_checkpoint
    from shared.db import transaction

    async def work(settings, sessionmaker):
        async with transaction(sessionmaker) as session:
            return await create_checkpoint(session, settings.hash_algorithm, actor="cli")

    record = _audit_run(work)
    record.pop("recorded_at", None)
    console.print_json(json.dumps(record, ensure_ascii=False))


@audit_app.command("sample")
def audit_sample(year: int = typer.Option(..., help="Exit year"), area: Optional[str] = typer.Option(None),
                 n: int = typer.Option(30, help="Households to draw"), seed: str = typer.Option("0"),
                 fmt: str = typer.Option("csv", "--format", help="csv, xlsx or json"),
                 out: Optional[Path] = typer.Option(None, help="Output file (default: stdout for csv/json)")) -> None:
    """Draw the reproducible stratified evaluation sample (masked ID numbers)."""
    from services.audit.supervision.sample import draw_sample, sample_csv, sample_xlsx

    async def work(settings, sessionmaker):
        async with sessionmaker() as session:
            return await draw_sample(session, area=area, year=year, n=n, seed=seed)

    result = _audit_run(work)
    if fmt == "json":
        payload = json.dumps(result, ensure_ascii=False, indent=2).encode()
    elif fmt == "xlsx":
        payload = sample_xlsx(result)
        out = out or Path(f"sample-{area or 'all'}-{year}-seed{seed}.xlsx")
    else:
        payload = sample_csv(result)
    if out:
        from shared.personal_data import private_output_file
        private_output_file(out).write_bytes(payload)
        console.print(f"{result['n']} households from {len(result['strata'])} townships written to {out}")
    else:
        typer.echo(payload.decode("utf-8-sig"))


@audit_app.command("anomalies")
def audit_anomalies(as_of: Optional[str] = typer.Option(None, help="YYYY-MM-DD (default: JZ_AUDIT_EVALUATION_DATE, "
                                                                  "else today)"),
                    area: Optional[str] = typer.Option(None), rule: Optional[list[str]] = typer.Option(None)) -> None:
    """Run the anomaly rules and print the findings with their evidence."""
    from datetime import date
    from services.audit.settings import load_extras
    from services.audit.supervision.anomalies import Context, find_anomalies
    from services.audit.supervision.common import default_as_of

    async def work(settings, sessionmaker):
        extras = load_extras(settings)  # the same settings as the HTTP rules (JZ_AUDIT_MONITORING_*_DAYS too)
        ctx = Context(area=area, as_of=date.fromisoformat(as_of) if as_of else default_as_of(settings),
                      no_visit_days=settings.no_visit_days, lookup_grace_days=extras.lookup_grace_days,
                      monitoring_lead_days=extras.monitoring_lead_days,
                      monitoring_measure_grace_days=extras.monitoring_measure_grace_days, limit=1000)
        async with sessionmaker() as session:
            return await find_anomalies(session, ctx, rule)

    console.print_json(json.dumps(_audit_run(work), ensure_ascii=False, default=str))


@audit_app.command("rebuild")
def audit_rebuild() -> None:
    """Rebuild the read models (projections) by replaying the ledger."""
    from services.audit.projections import rebuild

    count = _audit_run(lambda settings, sessionmaker: rebuild(sessionmaker))
    console.print(f"replayed {count} ledger records into the read models")


# --- policy lifecycle: validate → diff → simulate → publish ----------------------------------------
# Over HTTP to the running benefits service (JZ_BENEFITS_URL), not straight to its database: publishing
# must reach the process that runs the recompute job and reloads the packs, the checks must see the
# packs in force there (files plus publications), and the service writes the audit event and the
# publication in one transaction. One code path for the CLI and any other client.
policy_app = typer.Typer(help="Policy packs at run time: validate, diff, simulate, publish (admin).",
                         no_args_is_help=True)
app.add_typer(policy_app, name="policy")


def _policy_client():
    """An httpx client for benefits with an admin token: JZ_TOKEN, else one minted by the development
    issuer (embedded profile only, like ``jingzhun token``)."""
    import httpx

    token = os.environ.get("JZ_TOKEN")
    if not token:
        from shared.auth import DevIssuerRefused, mint_token
        try:
            token = mint_token(CommonSettings(), "admin", subject=f"cli:{os.environ.get('USER', 'office')}",
                               ttl_s=600)
        except DevIssuerRefused as exc:
            typer.echo(f"jingzhun policy: {exc}; set JZ_TOKEN to an admin token", err=True)
            raise typer.Exit(2) from exc
    return httpx.Client(base_url=os.environ.get("JZ_BENEFITS_URL", "http://127.0.0.1:8002"),
                        headers={"Authorization": f"Bearer {token}"}, timeout=120)


def _policy_call(path: str, body: dict) -> dict:
    import httpx

    try:
        with _policy_client() as client:
            response = client.post(path, json=body)
    except httpx.HTTPError as exc:
        typer.echo(f"jingzhun policy: benefits not reachable ({exc}); start it (jingzhun run) or set "
                   "JZ_BENEFITS_URL", err=True)
        raise typer.Exit(2) from exc
    answer = response.json() if response.headers.get("content-type", "").endswith("json") else {"detail": response.text}
    if response.status_code >= 400:
        console.print(f"[red]{response.status_code} {answer.get('title', '')}[/red] {answer.get('detail', '')}",
                      highlight=False)
        _print_pack_problems(answer.get("errors") or [])
        raise typer.Exit(1)
    return answer


def _print_pack_problems(problems: list[dict]) -> None:
    for problem in problems:
        where = f"line {problem['line']}" if problem.get("line") else "-"
        console.print(f"  {where:>9}  {problem.get('key', '')}: {problem.get('message', problem.get('msg', ''))}",
                      highlight=False)


def _pack_body(file: Path, effective: Optional[str], **extra) -> dict:
    body = {"pack": file.read_text(encoding="utf-8"), **{k: v for k, v in extra.items() if v}}
    if effective:
        body["effective_from"] = effective
    return body


_PACK_FILE = typer.Argument(..., exists=True, dir_okay=False, help="The pack (YAML or JSON)")
_EFFECTIVE = typer.Option(None, "--effective", help="Effective date YYYY-MM-DD (dates from it on follow this pack)")


@policy_app.command("validate")
def policy_validate(file: Path = _PACK_FILE, effective: Optional[str] = _EFFECTIVE,
                    offline: bool = typer.Option(False, "--offline", help="Check against the pack files of this "
                                                 "checkout only (no service, publications not seen)")) -> None:
    """Every problem of a pack: schema, programme codes, extends chain, dates, citations (exit 1 if any)."""
    if offline:
        import datetime as dt

        from shared.policy import default_registry
        from shared.policy.publication import validate_pack_text
        day = dt.date.fromisoformat(effective) if effective else None
        result = validate_pack_text(file.read_text(encoding="utf-8"), default_registry(), effective_from=day).view()
    else:
        result = _policy_call("/v1/policies:validate", _pack_body(file, effective))
    if result["valid"]:
        console.print(f"[green]valid[/green] {result['pack']} {result['version']}", highlight=False)
        return
    console.print(f"[red]{len(result['problems'])} problem(s)[/red]", highlight=False)
    _print_pack_problems(result["problems"])
    raise typer.Exit(1)


@policy_app.command("diff")
def policy_diff(file: Path = _PACK_FILE, effective: Optional[str] = _EFFECTIVE) -> None:
    """Parameters added / removed / changed, programmes enabled / disabled, validity changes."""
    console.print_json(json.dumps(_policy_call("/v1/policies:diff", _pack_body(file, effective)), ensure_ascii=False))


@policy_app.command("simulate")
def policy_simulate(file: Path = _PACK_FILE, effective: Optional[str] = _EFFECTIVE,
                    as_of: Optional[str] = typer.Option(None, help="Evaluation date (default: the effective date)")
                    ) -> None:
    """Deltas over the stored households of the pack's region, as if it were published (stores nothing)."""
    result = _policy_call("/v1/policies:simulate", _pack_body(file, effective, as_of=as_of))
    console.print_json(json.dumps(result, ensure_ascii=False))


@policy_app.command("publish")
def policy_publish(file: Path = _PACK_FILE,
                   effective: str = typer.Option(..., "--effective", help="Effective date YYYY-MM-DD"),
                   as_of: Optional[str] = typer.Option(None, help="Policy date of the recompute (default: the "
                                                                  "service's evaluation date)"),
                   wait: bool = typer.Option(True, help="Follow the recompute job until it ends")) -> None:
    """Publish (validated again, versioned, audited) and start the recompute of the pack's region."""
    import time

    result = _policy_call("/v1/policies:publish", _pack_body(file, effective, as_of=as_of))
    publication, job = result["publication"], result["job"]
    console.print(f"publication [bold]{publication['id']}[/bold] {publication['pack']} {publication['version']} "
                  f"effective {publication['effective_from']} by {publication['published_by']} "
                  f"(sha256 {publication['content_hash'][:12]}…)", highlight=False)
    if not job:
        return
    console.print(f"recompute job [bold]{job['id']}[/bold] scope {job['scope']} as of {job['as_of']}", highlight=False)
    with _policy_client() as client:
        while wait and job["status"] in ("pending", "running"):
            time.sleep(0.5)
            job = client.get(f"/v1/jobs/{job['id']}").json()
            console.print(f"  {job['processed']:>9}/{job['total']} households, {job['households_changed']} changed, "
                          f"{job['decisions']} decisions", highlight=False)
    console.print_json(json.dumps({"publication": {k: v for k, v in publication.items() if k not in ("text", "spec")},
                                   "job": job}, ensure_ascii=False))
    raise typer.Exit(0 if job["status"] in ("done", "pending", "running") else 2)


if __name__ == "__main__":
    app()
