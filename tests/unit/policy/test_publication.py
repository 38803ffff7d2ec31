"""Pure parts of the policy lifecycle: checking a candidate pack, its diff, and which version of a
pack governs which evaluation date once publications exist."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from shared.policy import POLICIES_DIR as FILES_DIR, PolicyPackError, default_registry
from shared.policy.publication import MAX_PACK_CHARS, content_hash, diff_pack, validate_pack_text
from shared.policy.resolution import Publication, load_pack_text

FILES = default_registry()

TRANSITION = """\
name: nankang-2021
version: "2021.1"
region: "360703"
valid_from: 2021-01-01
valid_to: 2025-12-31
extends: nankang-2020
programs_disabled: [industry.covid_unsold]
parameters:
  land_transfer_out.rates:
    value: {farmland_mu: 500, mountain_mu: 100}
    default_not_in_seeds: true
    note: the district's 2021 transition document
  machinery.household_cap:
    value: 15000
    source: {seed: "001", lines: "L247"}
"""


def problems(text: str, effective_from: dt.date | None = None, registry=FILES) -> list[tuple[str, int | None]]:
    checked = validate_pack_text(text, registry, effective_from=effective_from)
    for problem in checked.problems:  # every problem speaks both languages
        assert problem.zh and problem.en and problem.view()["message"] == f"{problem.zh} / {problem.en}"
    return [(p.key, p.line) for p in checked.problems]


def test_the_transition_pack_is_valid():
    checked = validate_pack_text(TRANSITION, FILES, effective_from=dt.date(2021, 1, 1))
    assert checked.ok and checked.view() == {"valid": True, "pack": "nankang-2021", "version": "2021.1", "problems": []}


@pytest.mark.parametrize("change, expected", [
    (("extends: nankang-2020", "extends: nankang-2019"), [("extends", 6)]),
    (("extends: nankang-2020", "extends: nankang-2021"), [("extends", 6)]),
    (("[industry.covid_unsold]", "[industry.no_such_thing]"), [("programs_disabled", 7)]),
    (("valid_to: 2025-12-31", "valid_to: 2020-12-31"), [("(root)", 1)]),
    (("valid_to: 2025-12-31", "valid_to: 2025-13-31"), [("valid_to", 5)]),
    (('lines: "L247"', 'lines: "L2047"'), [("parameters.machinery.household_cap.source", 15)]),
    (('lines: "L247"', 'lines: "247"'), [("parameters.machinery.household_cap.source", 15)]),
    (('seed: "001"', 'seed: "009"'), [("parameters.machinery.household_cap.source", 15)]),
    (("    default_not_in_seeds: true\n", ""), [("parameters.land_transfer_out.rates", 9)]),
    (("    note: the district's 2021 transition document\n", ""), [("parameters.land_transfer_out.rates", 9)]),
    (("value: 15000", "value: [15000]"), [("parameters.machinery.household_cap.value", 14)]),
    (("{farmland_mu: 500, mountain_mu: 100}", "{farmland_mu: 500}"), [("parameters.land_transfer_out.rates.value", 10)]),
    (("region: \"360703\"", "region: \"36-07\"\ncolour: red"), [("region", 3), ("colour", 4)]),
])
def test_each_problem_names_its_key_and_line(change, expected):
    assert problems(TRANSITION.replace(*change)) == expected


def test_yaml_syntax_errors_and_aliases_give_the_line():
    assert problems("name: x\nversion: [1\nregion: 3\n") == [("(yaml)", 3)]
    assert problems("a: &big [1, 2]\nb: *big\n") == [("(yaml)", 2)]
    assert problems("- just a list\n") == [("(root)", 1)]
    assert problems("x" * (MAX_PACK_CHARS + 1)) == [("(size)", None)]
    assert problems("name: x\nversion: \x1f\n") == [("(yaml)", 2)]
    assert problems("[" * 5_000) == [("(yaml)", None)]
    assert problems(TRANSITION.replace("value: 15000", "value: .inf")) == [("parameters.machinery.household_cap.value", 14)]
    assert problems(TRANSITION.replace('"2021.1"', '"' + "9" * 65 + '"')) == [("version", 2)]


def test_json_text_is_a_pack_too():
    import json

    import yaml
    as_json = json.dumps(yaml.safe_load(TRANSITION), default=str)
    checked = validate_pack_text(as_json, FILES)
    assert checked.ok and content_hash(checked.spec) == content_hash(load_pack_text(TRANSITION, "t"))


def test_effective_date_must_fall_in_the_pack_and_after_its_newest_publication():
    assert problems(TRANSITION, dt.date(2026, 1, 1)) == [("effective_from", None)]
    published = FILES.with_publication(load_pack_text(TRANSITION, "t"), dt.date(2022, 1, 1))
    later = TRANSITION.replace('"2021.1"', '"2021.2"')
    assert problems(later, dt.date(2021, 6, 1), published) == [("effective_from", None)]
    assert problems(later, dt.date(2022, 1, 1), published) == []


def test_diff_against_the_parent_for_a_new_pack():
    diff = diff_pack(load_pack_text(TRANSITION, "t"), FILES, effective_from=dt.date(2021, 1, 1))
    assert diff["against"] == {"pack": "nankang-2020", "version": "2020.1", "relation": "parent"}
    assert diff["parameters"] == {"added": [], "removed": [], "changed": [{
        "name": "land_transfer_out.rates", "old": {"farmland_mu": "400", "mountain_mu": "100"},
        "new": {"farmland_mu": "500", "mountain_mu": "100"}, "old_origin": "nankang-2020",
        "new_origin": "nankang-2021", "source": None, "default_not_in_seeds": True}]}  # 15000 restated: no change
    assert diff["programs"] == {"enabled": [], "disabled": ["industry.covid_unsold"]}
    assert {item["field"] for item in diff["validity"]} == {"version", "valid_from", "valid_to", "extends"}


def test_diff_of_a_new_version_against_the_one_in_force():
    registry = FILES.with_publication(load_pack_text(TRANSITION, "t"), dt.date(2021, 1, 1))
    second = load_pack_text(TRANSITION.replace('"2021.1"', '"2021.2"').replace("value: 15000", "value: 12000")
                            .replace("programs_disabled: [industry.covid_unsold]\n", ""), "t")
    diff = diff_pack(second, registry, effective_from=dt.date(2023, 1, 1))
    assert diff["against"] == {"pack": "nankang-2021", "version": "2021.1", "relation": "same_name"}
    assert [(c["name"], c["old"], c["new"]) for c in diff["parameters"]["changed"]] == [
        ("machinery.household_cap", "15000", "12000")]
    assert diff["programs"] == {"enabled": ["industry.covid_unsold"], "disabled": []}
    assert diff["validity"] == [{"field": "version", "old": "2021.1", "new": "2021.2"}]


def test_a_publication_governs_from_its_effective_date_and_earlier_dates_keep_the_previous_version():
    first = load_pack_text(TRANSITION, "t")
    second = load_pack_text(TRANSITION.replace('"2021.1"', '"2021.2"').replace("farmland_mu: 500", "farmland_mu: 600"), "t")
    registry = FILES.with_publications([Publication(1, first, dt.date(2021, 1, 1)),
                                        Publication(2, second, dt.date(2023, 1, 1))])

    def rate(day: dt.date):
        policy = registry.resolve("360703", day)
        return policy.pack, policy.version, policy.param("land_transfer_out.rates")["farmland_mu"]

    assert rate(dt.date(2020, 6, 30)) == ("nankang-2020", "2020.1", Decimal("400"))
    assert rate(dt.date(2021, 6, 30)) == ("nankang-2021", "2021.1", Decimal("500"))
    assert rate(dt.date(2022, 12, 31)) == ("nankang-2021", "2021.1", Decimal("500"))
    assert rate(dt.date(2023, 1, 1)) == ("nankang-2021", "2021.2", Decimal("600"))
    assert registry.resolve("360703", dt.date(2026, 1, 1)).pack == "cn-national"
    policy = registry.resolve("360703", dt.date(2021, 6, 30))
    assert policy.origin("machinery.max_price") == "nankang-2020" and policy.source("machinery.max_price")
    assert not policy.enabled("industry.covid_unsold") and policy.enabled("industry.machinery")
    assert registry.versions("nankang-2021") == [
        {"version": "2021.1", "effective_from": "2021-01-01", "publication_id": 1},
        {"version": "2021.2", "effective_from": "2023-01-01", "publication_id": 2}]
    assert FILES.resolve("360703", dt.date(2021, 6, 30)).pack == "cn-national"  # the files alone are untouched


def test_a_republished_parent_reaches_its_children_only_from_its_date():
    parent = load_pack_text((FILES_DIR / "nankang-2020.yaml").read_text().replace('"2020.1"', '"2020.2"')
                            .replace("valid_to: 2020-12-31", "valid_to: 2025-12-31"), "t")
    registry = FILES.with_publications([Publication(1, parent, dt.date(2020, 7, 1))])
    assert registry.resolve("360703", dt.date(2020, 6, 30)).version == "2020.1"
    assert registry.resolve("360703", dt.date(2020, 7, 1)).version == "2020.2"
    assert registry.resolve("360703", dt.date(2022, 1, 1)).pack == "nankang-2020"


def test_a_chain_broken_in_any_period_is_refused():
    orphan = load_pack_text(TRANSITION.replace("extends: nankang-2020", "extends: later-parent"), "t")
    parent = load_pack_text(TRANSITION.replace("nankang-2021", "later-parent").replace("extends: nankang-2020",
                                                                                     "extends: cn-national"), "t")
    with pytest.raises(PolicyPackError, match="unknown parent pack 'later-parent'"):
        FILES.with_publications([Publication(1, orphan, dt.date(2021, 1, 1)),
                                 Publication(2, parent, dt.date(2022, 1, 1))])


def test_overrides_reach_every_version_of_a_pack():
    registry = FILES.with_publication(load_pack_text(TRANSITION, "t"), dt.date(2021, 1, 1))
    changed = registry.with_overrides("nankang-2021", {"machinery.household_cap": Decimal("9000")})
    assert changed.resolve("360703", dt.date(2021, 6, 30)).param("machinery.household_cap") == Decimal("9000")
    assert changed.resolve("360703", dt.date(2020, 6, 30)).param("machinery.household_cap") == Decimal("15000")


def test_content_hash_ignores_layout_not_content():
    spec = load_pack_text(TRANSITION, "t")
    assert content_hash(spec) == content_hash(load_pack_text("# comment\n" + TRANSITION.replace('"2021.1"', "'2021.1'"), "t"))
    assert content_hash(spec) != content_hash(load_pack_text(TRANSITION.replace("15000", "15001"), "t"))




def test_cli_publish_posts_the_file_and_follows_the_job(monkeypatch, tmp_path):
    import httpx
    from typer.testing import CliRunner

    from jingzhun_cli import main as cli

    seen = []
    job = {"id": "j1", "scope": {"kind": "region", "code": "360703"}, "as_of": "2021-06-30", "total": 3,
           "processed": 3, "households_changed": 2, "decisions": 5}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content and json.loads(request.content)))
        if request.url.path == "/v1/policies:publish":
            return httpx.Response(201, json={"job": {**job, "status": "running"}, "publication": {
                "id": 7, "pack": "nankang-2021", "version": "2021.1", "effective_from": "2021-01-01",
                "published_by": "cli:x", "content_hash": "ab" * 32, "text": "...", "spec": {}}})
        return httpx.Response(200, json={**job, "status": "done"})

    monkeypatch.setattr(cli, "_policy_client", lambda: httpx.Client(base_url="http://benefits",
                                                                     transport=httpx.MockTransport(answer)))
    pack = tmp_path / "nankang-2021.yaml"
    pack.write_text(TRANSITION, encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["policy", "publish", str(pack), "--effective", "2021-01-01"])
    assert result.exit_code == 0, result.output
    assert seen[0] == ("POST", "/v1/policies:publish", {"pack": TRANSITION, "effective_from": "2021-01-01"})
    assert seen[1][:2] == ("GET", "/v1/jobs/j1")
    assert "publication 7 nankang-2021 2021.1" in result.output and '"status": "done"' in result.output


def test_cli_validate_offline_lists_problems_and_fails(tmp_path):
    from typer.testing import CliRunner

    from jingzhun_cli import main as cli

    pack = tmp_path / "bad.yaml"
    pack.write_text(TRANSITION.replace('lines: "L247"', 'lines: "L2047"'), encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["policy", "validate", "--offline", str(pack)])
    assert result.exit_code == 1 and "line 15" in result.output and "L2047" in result.output
