"""Yearly re-import (mode=update), header warnings over HTTP, and sample ledgers of several seeds,
on SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import select

from services.registry.imports.ledger import HEADER
from services.registry.imports.sample import generate_ledger
from services.registry.tables import household_versions, households, imports
from tests.integration.registry.conftest import count, events
from tests.integration.registry.test_ledger_import import to_csv, to_xlsx, upload

COL = {title: index for index, title in enumerate(HEADER)}


def by_household(rows):
    found: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        found.setdefault(row[COL["户编号"]], []).append(index)
    return found


async def snapshot(registry, household_id):
    return (await registry.get(f"/v1/households/{household_id}", headers=registry.admin)).json()


async def test_update_mode_reports_created_changed_unchanged_and_writes_versions_with_provenance(registry):
    header, rows = generate_ledger(60, seed=31, status="未脱贫")
    households_in_file = by_household(rows)
    ids = list(households_in_file)
    first = await upload(registry, to_csv(header, rows[:households_in_file[ids[-1]][0]]))
    assert first.status_code == 201, first.text[:500]
    before_events = len(await events(registry.app))

    next_year = [list(r) for r in rows]
    changed_id, health_id = ids[0], ids[1]
    for index in households_in_file[changed_id]:
        next_year[index][COL["人均纯收入"]] = "6100.00"
    member = households_in_file[health_id][-1]
    next_year[member][COL["健康状况"]] = "长期慢性病" if rows[member][COL["健康状况"]] == "健康" else "健康"
    response = await upload(registry, to_xlsx(header, next_year), name="2020.xlsx", mode="update")
    assert response.status_code == 201, response.text[:800]
    report = response.json()
    assert (report["mode"], report["created"], report["changed"], report["conflict"]) == ("update", 1, 2, 0)
    assert report["unchanged"] == len(ids) - 3 and report["written"] == 3
    results = {r["household_id"]: r for r in report["results"]}
    assert results[changed_id] == {"row": households_in_file[changed_id][0] + 2, "household_id": changed_id,
                                   "outcome": "changed", "matched_by": "household_id",
                                   "changed_paths": ["income.per_capita_net"]}
    position = households_in_file[health_id].index(member)
    assert results[health_id]["changed_paths"] == [f"members.{position}.health"]
    assert results[ids[-1]]["outcome"] == "created" and results[ids[2]]["outcome"] == "unchanged"

    stored = await snapshot(registry, changed_id)
    assert stored["version"] == 2 and stored["income"]["per_capita_net"] == "6100.00"
    new_events = (await events(registry.app))[before_events:]
    assert sorted(e["type"] for e in new_events) == ["household.registered", "household.updated",
                                                     "household.updated"]
    updated = next(e for e in new_events if e["subject"] == f"household/{changed_id}")
    assert updated["data"]["changed_paths"] == ["income.per_capita_net"]
    assert updated["data"]["provenance"] == {"import_id": report["import_id"], "filename": "2020.xlsx",
                                             "row": households_in_file[changed_id][0] + 2}
    async with registry.app.state.sessionmaker() as session:
        note = await session.scalar(select(household_versions.c.note).where(
            household_versions.c.household_id == changed_id, household_versions.c.version == 2))
    assert report["import_id"] in note

    again = await upload(registry, to_xlsx(header, next_year), name="2020.xlsx", mode="update")
    assert again.status_code == 200 and again.json()["written"] == 0
    assert again.json()["unchanged"] == len(ids)


async def test_update_conflicts_block_everything_unless_skip_invalid(registry):
    header, rows = generate_ledger(40, seed=32)
    assert (await upload(registry, to_csv(header, rows))).status_code == 201
    groups = by_household(rows)
    a, b, c = list(groups)[:3]
    file = [list(r) for r in rows]
    for index in groups[a]:
        file[index][COL["人均纯收入"]] = "9000.00"  # a real change, which must not be written alone
    for index in groups[b]:  # 户编号 b, but the head's ID number lives in household c
        file[index][COL["户主身份证号"]] = rows[groups[c][0]][COL["身份证号"]]
    file[groups[b][0]][COL["身份证号"]] = rows[groups[c][0]][COL["身份证号"]]
    file[groups[b][0]][COL["出生日期"]] = rows[groups[c][0]][COL["出生日期"]]
    file[groups[b][0]][COL["性别"]] = rows[groups[c][0]][COL["性别"]]
    file = [r for i, r in enumerate(file) if i not in groups[c]]
    before = (await count(registry.app, household_versions), len(await events(registry.app)))

    refused = await upload(registry, to_csv(header, file), mode="update")
    assert refused.status_code == 422, refused.text[:500]
    report = refused.json()["report"]
    conflict = next(r for r in report["results"] if r["outcome"] == "conflict")
    assert conflict["household_id"] == b and report["conflict"] == 1
    assert any(e["row"] == groups[b][0] + 2 and "point to different households" in e["message"]
               for e in report["errors"])
    assert (await count(registry.app, household_versions), len(await events(registry.app))) == before
    assert (await snapshot(registry, a))["version"] == 1

    partial = await upload(registry, to_csv(header, file), mode="update", skip_invalid=True)
    assert partial.status_code == 201 and partial.json()["changed"] == 1
    assert (await snapshot(registry, a))["income"]["per_capita_net"] == "9000.00"
    assert (await snapshot(registry, b))["version"] == 1


async def test_update_matches_by_head_id_number_keeps_person_ids_and_absent_columns(registry):
    header, rows = generate_ledger(20, seed=33, status="未脱贫")
    assert (await upload(registry, to_csv(header, rows))).status_code == 201
    groups = by_household(rows)
    target = list(groups)[0]
    stored = await snapshot(registry, target)
    # the province's ledger: no 户编号, no 成员编号, no income columns, members in another order
    keep = [t for t in header if t not in ("户编号", "成员编号", "人均纯收入", "收入年度")]
    file = [[row[COL[t]] for t in keep] for row in reversed([rows[i] for i in groups[target]])]
    file[-1][keep.index("劳动能力")] = "弱劳动力"  # the head (now last) lost part of their capacity
    response = await upload(registry, to_csv(keep, file), mode="update")
    assert response.status_code == 201, response.text[:800]
    [result] = response.json()["results"]
    assert result["matched_by"] == "head_id_number" and result["household_id"] == target
    assert result["changed_paths"] == ["members.0.labour_capacity"]
    after = await snapshot(registry, target)
    assert [m["id"] for m in after["members"]] == [m["id"] for m in stored["members"]]
    assert after["income"] == stored["income"] and after["members"][0]["labour_capacity"] == "weak"


async def test_update_refuses_a_status_change_and_a_person_of_another_household(registry):
    header, rows = generate_ledger(20, seed=34, status="未脱贫")
    assert (await upload(registry, to_csv(header, rows))).status_code == 201
    groups = by_household(rows)
    a, b = list(groups)[:2]
    file = [list(rows[i]) for i in groups[a] + groups[b]]  # b unchanged, a "exited" in the file
    for row in file[:len(groups[a])]:
        row[COL["贫困户状态"]] = "已脱贫"
    refused = await upload(registry, to_csv(header, file), mode="update")
    assert refused.status_code == 422
    errors = refused.json()["report"]["errors"]
    assert any(e["column"] == "贫困户状态" and "procedures" in e["message"] for e in errors)
    assert (await snapshot(registry, a))["status"] == "registered"

    header2, other = generate_ledger(8, seed=35)
    other_groups = by_household(other)
    first_other = list(other_groups)[0]
    clash = [list(other[i]) for i in other_groups[first_other]]
    child = next(r for r in clash if r[COL["与户主关系"]] != "户主") if len(clash) > 1 else None
    if child is None:
        clash.append(list(clash[0]))
        child = clash[-1]
        child[COL["与户主关系"]] = "子女"
    member_of_a = rows[groups[a][0]]
    for title in ("身份证号", "出生日期", "性别"):
        child[COL[title]] = member_of_a[COL[title]]
    response = await upload(registry, to_csv(header2, clash), mode="update")
    assert response.status_code == 422
    report = response.json()["report"]
    assert report["results"][0]["outcome"] == "conflict"
    assert any(f"belongs to another household, {a}" in e["message"] for e in report["errors"])
    assert await count(registry.app, households) == len(groups)


async def test_create_mode_points_known_households_to_update_mode(registry):
    header, rows = generate_ledger(10, seed=36)
    assert (await upload(registry, to_csv(header, rows))).status_code == 201
    again = await upload(registry, to_csv(header, rows))
    assert again.status_code == 422
    message = again.json()["report"]["errors"][0]["message"]
    assert "already registered" in message and "--update" in message and "已登记" in message


async def test_sample_ledgers_of_different_seeds_import_into_one_registry(registry):
    numbers = {}
    for seed in (1, 2, 7, 19):
        header, rows = generate_ledger(300, seed=seed)
        ids = {r[COL["户编号"]] for r in rows}
        assert all(i.startswith(f"LZ{seed:02d}-") for i in ids)
        numbers[seed] = {r[COL["身份证号"]] for r in rows}
        response = await upload(registry, to_csv(header, rows))
        assert response.status_code == 201, response.text[:500]
        assert response.json()["written"] == len(ids)
    assert len(set.union(*numbers.values())) == sum(len(n) for n in numbers.values())
    assert await count(registry.app, imports) == 4


async def test_unknown_headers_warn_in_the_response_and_strict_refuses_before_writing(registry):
    header, rows = generate_ledger(10, seed=37)
    header = [*header, "联系电话"]
    rows = [[*row, "13800000000"] for row in rows]
    lenient = await upload(registry, to_csv(header, rows))
    assert lenient.status_code == 201
    [warning] = lenient.json()["warnings"]
    assert warning["column"] == "联系电话" and "unknown column" in warning["message"]
    assert lenient.json()["warning_count"] == 1

    header2, rows2 = generate_ledger(10, seed=38)
    strict = await upload(registry, to_csv([*header2, "联系电话"], [[*r, "1"] for r in rows2]), strict=True)
    assert strict.status_code == 422 and strict.headers["content-type"] == "application/problem+json"
    body = strict.json()
    assert body["title"] == "Invalid ledger header" and "no row was read" in body["detail"]
    assert [e["column"] for e in body["report"]["errors"]] == ["联系电话"]
    assert await count(registry.app, households) == len({r[0] for r in rows})


async def test_missing_columns_are_one_header_problem_even_with_skip_invalid(registry):
    header, rows = generate_ledger(10, seed=39)
    renamed = [{"姓名": "名字", "与户主关系": "关系"}.get(h, h) for h in header]
    response = await upload(registry, to_csv(renamed, rows), skip_invalid=True)
    assert response.status_code == 422
    body = response.json()
    assert body["title"] == "Invalid ledger header"
    [error] = body["report"]["errors"]
    assert error["missing"] == ["姓名", "与户主关系"] and body["report"]["households"] == 0
    assert await count(registry.app, households) == 0
