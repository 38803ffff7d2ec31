"""Runs a service's own Alembic history (embedded start-up, ``jingzhun migrate``, tests)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(service: str, url: str) -> Config:
    script_location = Path(str(resources.files(f"services.{service}"))) / "migrations"
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def _upgrade(sync_connection, config: Config) -> None:
    config.attributes["connection"] = sync_connection
    command.upgrade(config, "head")


async def upgrade_to_head(service: str, engine: AsyncEngine) -> None:
    """Upgrade using an existing async engine (safe inside a running event loop)."""
    config = alembic_config(service, engine.url.render_as_string(hide_password=False))
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, config)
