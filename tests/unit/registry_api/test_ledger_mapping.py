"""The ledger mapping is pure: Chinese headers and words in, snapshot bodies out, and back."""
from __future__ import annotations

from services.registry.households.facts import fact_of
from services.registry.households.service import validated_new_household
from services.registry.imports import ledger
from services.registry.imports.sample import generate_ledger
from services.registry.villages.service import AreaIn, parent_of

COL = {title: index for index, title in enumerate(ledger.HEADER)}


def parse(header, rows, admin=True):
    return ledger.parse_ledger(header, rows, validated_new_household, admin=admin)


def test_generated_ledger_is_valid_and_groups_by_household_number():
    header, rows = generate_ledger(200, seed=1)
    result = parse(header, rows)
    assert result.all_errors() == []
    assert sum(len(h.snapshot["members"]) for h in result.valid) == 200
    first = result.valid[0].snapshot
    assert first["id"] == "LZ01-000001" and first["members"][0]["relation"] == "head"
    assert first["village"]["township_name"] in ("隆木乡", "坪市乡", "麻双乡")
    assert set(first["poverty_causes"]) <= {"illness", "disability", "schooling", "lack_of_capital",
                                            "lack_of_skills", "lack_of_labour"}


def test_aliases_and_words_map_to_snapshot_codes():
    header = ["户号", "县代码", "户主姓名", "成员姓名", "身份证号码", "与户主关系", "致贫原因", "户类型",
              "家庭年人均纯收入", "收入年度", "户状态", "健康状况", "劳动能力", "不愁吃"]
    rows = [["A1", "360703", "钟大山", "钟大山", "360782197803150018", "户主", "因病、缺资金", "低保户,边缘户",
             "3,200.50", "2019", "未脱贫", "长期慢性病", "普通劳动力", "是"],
            ["A1", "360703", "钟大山", "刘秀英", "360782198001200022", "配偶", "", "", "", "", "", "健康", "", ""]]
    result = parse(header, rows)
    assert result.all_errors() == []
    snapshot = result.valid[0].snapshot
    assert snapshot["status"] == "registered" and snapshot["categories"] == ["dibao", "marginal"]
    assert snapshot["poverty_causes"] == ["illness", "lack_of_capital"]
    assert snapshot["income"] == {"year": 2019, "per_capita_net": "3200.50"}
    assert snapshot["guarantees"]["food"] is True and snapshot["guarantees"]["clothing"] is None
    head, spouse = snapshot["members"]
    assert head["sex"] == "M" and head["birth_date"] == "1978-03-15" and head["health"] == "chronic"
    assert spouse["relation"] == "spouse" and spouse["sex"] == "F"


def test_errors_name_row_and_column():
    header, rows = generate_ledger(12, seed=4)
    rows[0][COL["与户主关系"]] = "邻居"
    rows[3][COL["身份证号"]] = "36070319900101001"  # 17 characters
    rows[5][COL["健康状况"]] = "很好"
    result = parse(header, rows)
    errors = {(e["row"], e["column"]) for e in result.all_errors()}
    assert {(2, "与户主关系"), (5, "身份证号"), (7, "健康状况")} <= errors


def test_non_admin_may_only_import_candidates_and_one_head_per_household():
    header, rows = generate_ledger(6, seed=8, status="已脱贫")
    assert {e["column"] for e in parse(header, rows, admin=False).all_errors()} == {"贫困户状态"}
    header, rows = generate_ledger(6, seed=8)
    rows[1][COL["与户主关系"]] = "户主"
    assert any("exactly one 户主" in e["message"] for e in parse(header, rows).all_errors())


def test_export_rows_parse_back_to_the_same_snapshots():
    header, rows = generate_ledger(80, seed=6, status="未脱贫")
    snapshots = [h.snapshot for h in parse(header, rows).valid]
    exported = [row for snapshot in snapshots for row in ledger.ledger_rows(snapshot)]
    again = [h.snapshot for h in parse(ledger.HEADER, [[("" if v is None else str(v)) for v in r] for r in exported]).valid]
    assert again == snapshots


def test_area_levels_follow_code_length():
    assert AreaIn.model_validate({"code": "360703105201", "name": "新村村"}).level == "village"
    assert AreaIn.model_validate({"code": "360703105201001", "name": "一组"}).level == "group"
    assert parent_of("360703105201") == "360703105" and parent_of("36") is None


def test_visit_facts_are_named_by_member_id():
    members = [{"id": "p-1"}, {"id": "p-2"}]
    assert fact_of("members.1.health", members) == "members.p-2.health"
    assert fact_of("income.per_capita_net", members) == "income"
    assert fact_of("guarantees.food", members) == "guarantees.food"
    assert fact_of("members.1.name", members) is None and fact_of("categories", members) is None
