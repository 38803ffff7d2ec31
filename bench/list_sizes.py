"""Size of one 500-household page of GET /v1/households: full snapshots vs view=summary vs fields=
(issue 12 item 6). The demo district's generator makes the 500 households; the registry runs in-process
on a temporary SQLite database.

    .venv/bin/python -m bench.list_sizes [--households 500]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from jingzhun_cli.demo import demo_households
from services.registry.app import create_app
from services.registry.households.service import bulk_create_households, validated_new_household
from shared.auth import Principal, mint_token
from shared.config import RegistrySettings
from shared.db import transaction
from tests.helpers import running_app


async def measure(count: int) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = RegistrySettings(var_dir=Path(tmp), database_url=f"sqlite+aiosqlite:///{tmp}/registry.db",
                                    kafka_bootstrap="127.0.0.1:1", log_json=False, log_level="WARNING")
        app = create_app(settings)
        admin = mint_token(settings, "admin")
        async with running_app(app, admin) as client:
            snapshots = [validated_new_household(body, hid) for hid, body in demo_households(count)]
            async with transaction(app.state.sessionmaker) as session:
                await bulk_create_households(session, snapshots, Principal(subject="bench", scopes=frozenset({"admin"})))
            office = {"Authorization": f"Bearer {mint_token(settings, 'registry:read')}"}
            sizes = {}
            for label, params, headers in (
                    ("full (admin)", {}, {}), ("full (masked, registry:read)", {}, office),
                    ("view=summary", {"view": "summary"}, office),
                    ("fields=status,village,income", {"fields": "status,village,income"}, office)):
                response = await client.get("/v1/households", params={"limit": count, **params}, headers=headers)
                assert response.status_code == 200 and len(response.json()["items"]) == count, response.text
                sizes[label] = len(response.content)
            return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=500)
    args = parser.parse_args()
    sizes = asyncio.run(measure(args.households))
    full = sizes["full (masked, registry:read)"]
    for label, size in sizes.items():
        print(f"{label:32} {size:>10,} bytes  {size / full:6.1%} of full")


if __name__ == "__main__":
    main()
