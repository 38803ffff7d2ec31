from __future__ import annotations

import pytest

from services.audit.app import create_app
from shared.auth import mint_token
from shared.config import AuditSettings
from tests.helpers import running_app


@pytest.fixture
async def audit(databases, tmp_path):
    settings = AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"),
                             kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    app = create_app(settings, id_hash_key="test-key", checkpoint_schedule=False)
    token = mint_token(settings, "audit:read")
    async with running_app(app, token) as client:
        client.app = app
        client.settings = settings
        client.admin = {"Authorization": f"Bearer {mint_token(settings, 'admin')}"}
        client.token_for = lambda scopes, **kw: {"Authorization": f"Bearer {mint_token(settings, scopes, **kw)}"}
        yield client
