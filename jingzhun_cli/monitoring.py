"""``jingzhun monitoring import-leads FILE [--dry-run]``: a department's push of leads (部门筛查预警) from a
CSV/XLSX file into the registry's database, all or nothing with the report (services/registry/monitoring/
imports.py, the same code as ``POST /v1/monitoring/leads:import``)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Optional

import typer

monitoring_app = typer.Typer(help="Monitoring against a return to poverty (防止返贫动态监测).", no_args_is_help=True)


@monitoring_app.command("import-leads")
def import_leads(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Leads .xlsx or .csv"),
                 dry_run: bool = typer.Option(False, "--dry-run", help="Check and report; write nothing"),
                 report: Optional[Path] = typer.Option(None, help="Write the full report (JSON) here")) -> None:
    """Import a department's list of households at risk as leads: every row checked first, then all or nothing."""
    from jingzhun_cli.main import _cli_principal, _print_report_errors, _registry_sessionmaker, console
    from services.registry.monitoring import imports
    from shared.clock import china_now
    from shared.problems import Problem

    async def run() -> tuple[int, dict]:
        engine, sessionmaker = await _registry_sessionmaker()()
        try:
            rows, header_errors = await imports.read_upload(file.read_bytes(), file.name)
            return await imports.push(sessionmaker, rows, header_errors, _cli_principal(), now=china_now(),
                                      dry_run=dry_run)
        finally:
            await engine.dispose()

    try:
        _, result = asyncio.run(run())
        failed = None
    except Problem as problem:
        if "report" not in problem.extra:
            console.print(f"[red]{problem.title}[/red]: {problem.detail}")
            raise typer.Exit(1)
        result, failed = problem.extra["report"], problem
    if report:
        from shared.personal_data import private_output_file
        private_output_file(report).write_text(json.dumps(result, ensure_ascii=False, indent=2))
    if failed is not None:
        _print_report_errors(result["errors"])
        console.print(f"[red]nothing written / 未写入[/red]: {len(result['errors'])} problem(s) in "
                      f"{result['rows']} rows")
        raise typer.Exit(1)
    verb = "would record" if dry_run else "recorded"
    console.print(f"[green]{verb} {result['created']} new lead(s), {result['merged']} merged into open cases"
                  f"[/green], {result['replayed']} already recorded, from {result['rows']} rows")
