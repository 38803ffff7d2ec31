"""The message catalogue: both languages everywhere, every pydantic error type, every message the code raises."""
from __future__ import annotations

import typing

import pydantic_core
import pytest
from pydantic_core import core_schema

from shared.i18n import (Catalogue, catalogue, covered, localize, localize_problem, negotiate, placeholders,
                         split_bilingual, validation_message)
from shared.messages.scan import problem_types, scan

ENGLISH_ONLY = {"expected_plural"}  # "character{expected_plural}": English grammar, no Chinese counterpart


def all_entries():
    data = catalogue().data
    yield from (("message", e) for e in data["messages"])
    yield from ((f"validation {k}", e) for k, e in data["validation"].items())
    yield from ((f"type {k}", e) for k, e in data["problem_types"].items())


def test_every_entry_has_english_and_chinese_with_the_same_placeholders():
    count = 0
    for where, entry in all_entries():
        en, zh = entry.get("en"), entry.get("zh")
        assert isinstance(en, str) and en.strip() and isinstance(zh, str) and zh.strip(), (where, entry)
        assert placeholders(zh) <= placeholders(en), (where, entry)
        assert placeholders(en) - placeholders(zh) <= ENGLISH_ONLY, (where, entry)
        # Chinese words, unless the message is only its (already localized) reason: value_error "{error}"
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh) or zh == "{error}", (where, zh)
        count += 1
    english = [e["en"] for e in catalogue().data["messages"]]
    assert len(english) == len(set(english)), "an English text has two entries"
    assert count > 300


def test_every_pydantic_error_type_has_both_languages_and_pydantics_own_english():
    types = typing.get_args(core_schema.ErrorType)
    validation = catalogue().data["validation"]
    assert set(types) <= set(validation), sorted(set(types) - set(validation))
    for kind in ("missing", "extra_forbidden", "string_type", "int_parsing"):
        assert validation[kind]["en"] == pydantic_core.PydanticKnownError(kind).message_template
    assert validation["string_too_long"]["en"] == pydantic_core.PydanticKnownError(
        "string_too_long", {"max_length": 5}).message_template


def test_every_problem_title_detail_and_validation_message_in_the_code_is_catalogued():
    found = list(scan())
    assert len(found) > 200  # the scan sees the raise sites (Problem, _reject, InvalidIdNumber…)
    missing = []
    for item in found:
        english = split_bilingual(item.sample)[1]
        if set(english) <= set("V0123456789x /"):  # the whole text is a value ("{exc}", "{zh} / {en}")
            continue
        if not covered(item.sample):
            missing.append(f"{item.path}:{item.line} {item.shape}")
    assert not missing, "add these to shared/messages/catalogue.yaml:\n" + "\n".join(missing)


def test_every_problem_type_uri_has_both_languages():
    types = problem_types()
    assert {"validation", "unauthorized", "body-too-large", "idempotency-key-reused"} <= types
    assert types <= set(catalogue().problem_types), sorted(types - set(catalogue().problem_types))


@pytest.mark.parametrize("header, lang", [
    (None, "en"), ("", "en"), ("zh-CN", "zh"), ("zh", "zh"), ("zh-Hans-CN", "zh"), ("zh-TW,zh;q=0.9", "zh"),
    ("en-US,en;q=0.9,zh-CN;q=0.8", "en"), ("en;q=0.5, zh-CN;q=0.8", "zh"), ("fr-FR, zh;q=0.3", "zh"),
    ("zh;q=0, en", "en"), ("zh;q=0", "en"), ("de", "en"), ("*", "en"), ("zh;q=bogus, en;q=0.1", "en"),
    ("ZH-cn", "zh")])
def test_negotiation_by_q_values(header, lang):
    assert negotiate(header) == lang


@pytest.mark.parametrize("text, zh, en", [
    ("区域之外 / Outside your area", "区域之外", "Outside your area"),
    ("没有行政区划 360 / No administrative area 360.", "没有行政区划 360。", "No administrative area 360."),
    ("Your token is limited to area 3607.", "你的令牌仅限区域 3607。", "Your token is limited to area 3607."),
    ("Household has not exited (不脱贫不脱钩)", "不脱贫不脱钩", "Household has not exited"),
    ("action 'x' is not allowed for a household in candidate; allowed: apply, remove",
     "农户处于 candidate，不允许操作 'x'；允许的操作：apply, remove",
     "action 'x' is not allowed for a household in candidate; allowed: apply, remove"),
    ("action 'x' is not allowed for a household in candidate; allowed: none",
     "农户处于 candidate，不允许操作 'x'；当前没有可用的操作",
     "action 'x' is not allowed for a household in candidate; allowed: none"),
])
def test_localize_gives_one_language(text, zh, en):
    assert localize(text, "zh") == zh
    assert localize(text, "en") == en


def test_unknown_text_is_kept_not_dropped():
    assert localize("something nobody catalogued", "zh") == "something nobody catalogued"
    assert localize("只有中文的说明", "en") == "只有中文的说明"


def test_validation_messages_by_type_with_and_without_ctx():
    assert validation_message({"type": "missing", "msg": "Field required"}, "zh") == "缺少必填字段"
    assert validation_message({"type": "string_too_long", "msg": "x", "ctx": {"max_length": 40}}, "zh") \
        == "最多 40 个字符"
    assert validation_message({"type": "string_too_long", "msg": "String should have at most 40 characters"},
                              "zh") == "最多 40 个字符"
    assert validation_message({"type": "literal_error", "msg": "Input should be 'M' or 'F'"}, "zh") \
        == "应为 'M' 或 'F'"
    sex = {"type": "value_error", "msg": "Value error, sex F does not match the ID number (M)"}
    assert validation_message(sex, "zh") == "性别 F 与身份证号不符（身份证号为 M）"
    assert validation_message(sex, "en") == sex["msg"]
    # the registry's own errors carry no type: found by their text
    assert validation_message({"msg": "member ids must be unique"}, "zh") == "成员 ID 不能重复"


def test_problem_body_fields_in_one_language():
    body = {"type": "about:blank", "title": "Invalid household", "status": 422,
            "detail": "Some members are invalid.", "errors": [{"loc": ["body"], "msg": "Field required",
                                                               "type": "missing"}], "other": "kept"}
    zh = localize_problem(body, "zh")
    assert (zh["title"], zh["detail"], zh["errors"][0]["msg"], zh["other"]) == \
        ("农户数据无效", "部分成员数据无效。", "缺少必填字段", "kept")
    assert localize_problem(body, "en") == body


def test_catalogue_is_data_loaded_from_yaml():
    small = Catalogue({"messages": [{"en": "No cadre {id}.", "zh": "没有干部 {id}。"}]})
    entry, params = small.match("No cadre c-1.")
    assert entry.render("zh", params) == "没有干部 c-1。"


def test_counts_for_the_report(capsys):
    data = catalogue().data
    both = lambda entries: sum(1 for e in entries if e.get("en") and e.get("zh"))  # noqa: E731
    with capsys.disabled():
        print(f"\ncatalogue: {both(data['messages'])} messages, {both(data['problem_types'].values())} problem "
              f"types, {both(data['validation'].values())} validation types with both languages")
