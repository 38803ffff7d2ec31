"""Problems answer in the caller's language: Chinese with Accept-Language zh, English otherwise (issue 12)."""
from __future__ import annotations

import copy
import uuid

import pytest

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from tests.helpers import household_body, running_app

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
EN = {"Accept-Language": "en-US,en;q=0.9"}


def assert_language(response, lang: str) -> dict:
    assert response.headers["content-type"] == "application/problem+json", response.text
    assert response.headers["content-language"] == lang
    assert "accept-language" in response.headers["vary"].lower()
    body = response.json()
    texts = [body["title"], body.get("detail") or "", *(e["msg"] for e in body.get("errors", []))]
    for text in texts:
        has_chinese = any("\u4e00" <= ch <= "\u9fff" for ch in text)
        assert has_chinese == (lang == "zh") or not text, (lang, text)
    assert int(response.headers["content-length"]) == len(response.content)
    return body


@pytest.fixture
async def registry(databases, tmp_path):
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False, body_limit_bytes=4096)
    app = create_registry(settings)
    async with running_app(app, mint_token(settings, "registry:read registry:write")) as client:
        client.settings = settings
        yield client


async def test_missing_field_and_bad_id_number(registry):
    zh = assert_language(await registry.post("/v1/cadres", json={"name": "钟干部"}, headers=ZH), "zh")
    assert zh["title"] == "请求无效" and "缺少必填字段" in [e["msg"] for e in zh["errors"]]
    en = assert_language(await registry.post("/v1/cadres", json={"name": "钟干部"}), "en")
    assert en["title"] == "Invalid request" and "Field required" in [e["msg"] for e in en["errors"]]

    body = household_body()
    number = body["members"][0]["id_number"]
    body["members"][0]["id_number"] = number[:17] + ("0" if number[17] != "0" else "1")
    zh = assert_language(await registry.post("/v1/households", json=body, headers=ZH), "zh")
    assert any("校验码不符" in e["msg"] for e in zh["errors"]), zh
    en = assert_language(await registry.post("/v1/households", json=copy.deepcopy(body), headers=EN), "en")
    assert any("check digit does not match" in e["msg"] for e in en["errors"]), en

    wrong_sex = household_body()
    member = wrong_sex["members"][0]
    member["sex"] = "F" if member["sex"] == "M" else "M"
    zh = assert_language(await registry.post("/v1/households", json=wrong_sex, headers=ZH), "zh")
    assert any(e["msg"].startswith(f"性别 {member['sex']} 与身份证号不符") for e in zh["errors"]), zh


async def test_other_area_illegal_transition_and_tokens(registry):
    created = await registry.post("/v1/households", json=household_body())
    assert created.status_code == 201, created.text
    hid = created.json()["id"]
    other = mint_token(registry.settings, "registry:read", area="11")
    for headers, lang, title in ((ZH, "zh", "农户不存在"), (EN, "en", "Household not found")):
        response = await registry.get(f"/v1/households/{hid}", headers={**headers, "Authorization": f"Bearer {other}"})
        assert response.status_code == 404
        assert assert_language(response, lang)["title"] == title

    zh = await registry.post(f"/v1/households/{hid}/transitions", json={"action": "approve_exit"}, headers=ZH)
    assert zh.status_code == 409
    body = assert_language(zh, "zh")
    assert body["title"] == "不允许的流转" and "不允许操作 'approve_exit'" in body["detail"]
    assert body["allowed_actions"] == ["apply", "remove"]  # the rest of the problem is untouched
    en = assert_language(await registry.post(f"/v1/households/{hid}/transitions", json={"action": "approve_exit"}),
                         "en")
    assert en["title"] == "Transition not allowed" and en["detail"].startswith("action 'approve_exit' is not")

    missing = await registry.get("/v1/households", headers={**ZH, "Authorization": ""})
    assert missing.status_code == 401 and assert_language(missing, "zh")["title"] == "缺少令牌"
    for garbage in (b"Bearer \xb7\xb7\xb7.\xff\xfe.x", b"Bearer eyJhbGciOiJSUzI1NiJ9.\xb7.x", b"Bearer a.b",
                    b"Bearer " + bytes(range(0x80, 0xa0))):
        refused = await registry.get("/v1/households", headers={"Accept-Language": "zh", "Authorization": garbage})
        assert refused.status_code == 401, refused.text
        body = assert_language(refused, "zh")
        assert (body["title"], body["detail"]) == ("令牌无效", "令牌格式错误。"), body
        assert "codec" not in refused.text and "padding" not in refused.text
        english = await registry.get("/v1/households", headers={"Authorization": garbage})
        assert assert_language(english, "en")["detail"] == "The token is malformed."


async def test_oversize_body_and_idempotency_key_reuse(registry):
    big = {"name": "钟干部", "unit": "x" * 10_000}
    zh = await registry.post("/v1/cadres", json=big, headers=ZH)
    assert zh.status_code == 413
    assert assert_language(zh, "zh")["detail"] == "请求体超过此路径的上限 4096 字节。"
    en = await registry.post("/v1/cadres", json=big)
    assert assert_language(en, "en")["title"] == "Request body too large"

    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await registry.post("/v1/cadres", json={"id": "cadre-wu", "name": "吴干部", "unit": "南康区民政局"},
                                headers=key)
    assert first.status_code == 201, first.text
    reused = await registry.post("/v1/cadres", json={"id": "cadre-li", "name": "李干部", "unit": "南康区民政局"},
                                 headers={**key, **ZH})
    assert reused.status_code == 422
    body = assert_language(reused, "zh")
    assert body["title"] == "幂等键已用于另一个请求" and key["Idempotency-Key"] in body["detail"]
    reused_en = await registry.post("/v1/cadres", json={"id": "cadre-li", "name": "李干部", "unit": "x"}, headers=key)
    assert assert_language(reused_en, "en")["title"] == "Idempotency-Key reused for another request"


def common(tmp_path, name: str) -> dict:
    return dict(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db",
                kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)


@pytest.mark.parametrize("service", ["benefits", "audit"])
async def test_benefits_and_audit_answer_in_the_callers_language(tmp_path, service):
    app = (create_benefits(BenefitsSettings(**common(tmp_path, "benefits"))) if service == "benefits" else
           create_audit(AuditSettings(**common(tmp_path, "audit")), id_hash_key="k", checkpoint_schedule=False))
    path = "/v1/households/hh-none/entitlements" if service == "benefits" else "/v1/audit/records"
    async with running_app(app) as client:
        missing = await client.get(path, headers=ZH)
        assert missing.status_code == 401 and assert_language(missing, "zh")["title"] == "缺少令牌"
        assert assert_language(await client.get(path), "en")["title"] == "Missing bearer token"
        token = mint_token(app.state.settings, "registry:read")
        refused = await client.get(path, headers={**ZH, "Authorization": f"Bearer {token}"})
        assert refused.status_code == 403 and assert_language(refused, "zh")["title"] == "权限不足"
        healthy = await client.get("/healthz", headers=ZH)
        assert healthy.status_code == 200 and "content-language" not in healthy.headers
