"""The rules judge on the events' own business dates (visit ``visited_at``, the procedure step's ``at``,
``identified_year``, the pairing's ``started_at``/``ended_at``), never on when an event was written or
ingested. Every event here is stamped 2026 (as a demo loaded today would be) while its facts are 2020."""
from __future__ import annotations

from services.audit.app import create_app
from services.audit.projections import rebuild
from shared.auth import mint_token
from shared.config import AuditSettings
from shared.events import Envelope
from tests.helpers import running_app
from tests.integration.audit.support import feed, registry_event, snapshot, t

WRITTEN = "2026-03-01T08:00:00"  # when the registry wrote the events: long after the facts


async def anomalies(audit, rule: str, as_of: str = "2020-06-30") -> dict[str, dict]:
    response = await audit.get("/v1/supervision/anomalies", params={"rule": rule, "as_of": as_of})
    assert response.status_code == 200, response.text
    return {item["household_id"]: item for item in response.json()["items"]}


def registered(hid: str, seq: int, *, identified_year: int | None = 2014, status: str = "registered",
               version: int = 1) -> dict:
    snap = snapshot(hid, seq=seq, status=status, version=version)
    snap["identified_year"] = identified_year
    return snap


def visit(hid: str, seq: int, visited_at: str) -> Envelope:
    return registry_event("visit.recorded", registered(hid, seq), time=WRITTEN,
                          visit={"visited_at": visited_at, "cadre_id": "cadre-1"})


def registry_transition(hid: str, snap: dict, action: str, at: str, *, from_status: str, to_status: str,
                        override: bool = False, reason: str | None = None, unmet=()) -> Envelope:
    """The shape services/registry/workflows publishes: the step record under ``transition``."""
    step = {"action": action, "actor": "office-7", "at": at, "outcome": "ok", "from_status": from_status,
            "to_status": to_status, "procedure": None, "reason": reason, "note": None, "override": override,
            "overridden_criteria": list(unmet)}
    data = {"household": snap, "version": snap["version"], "changed_paths": ["status"], "transition": step,
            "from_status": from_status, "to_status": to_status}
    if override:
        data["override"] = {"reason": reason, "overridden_criteria": list(unmet)}
    return Envelope(source="registry", type="household.status_changed", subject=f"household/{snap['id']}",
                    sequence=snap["version"], time=t(WRITTEN), data=data, actor="office-7")


def pairing(hid: str, cadre: str, kind: str, *, started: str, ended: str | None = None, version: int = 1) -> Envelope:
    """pairing.started / pairing.ended as the registry's cadre service publishes them."""
    record = {"id": 1, "household_id": hid, "cadre_id": cadre, "started_at": started, "started_by": "office-7",
              "ended_at": ended, "ended_by": "office-7" if ended else None, "end_reason": None}
    snap = registered(hid, 9, version=version)
    return Envelope(source="registry", type=f"pairing.{kind}", subject=f"household/{hid}", sequence=version,
                    time=t(WRITTEN), data={"household": snap, "version": version, "pairing": record},
                    actor="office-7")


async def test_visited_household_counts_from_its_last_visit(audit):
    await feed(audit.app, *[registry_event("household.registered", registered(h, s), time=WRITTEN)
                            for h, s in (("hh-91", 1), ("hh-90", 3), ("hh-old", 5))])
    await feed(audit.app, visit("hh-91", 1, "2020-03-31T16:00:00+08:00"), visit("hh-90", 3, "2020-04-01T08:00:00+08:00"),
               visit("hh-old", 5, "2019-01-10T09:00:00+08:00"), visit("hh-old", 5, "2020-02-01T09:00:00+08:00"),
               visit("hh-old", 5, "2019-06-10T09:00:00+08:00"))  # a late-arriving older visit changes nothing
    found = await anomalies(audit, "no_recent_visit")
    assert set(found) == {"hh-91", "hh-old"}  # 90 days is not more than 90
    assert (found["hh-91"]["facts"]["last_visit"], found["hh-91"]["facts"]["days"]) == ("2020-03-31", 91)
    assert found["hh-91"]["detail"] == "no home visit since 2020-03-31: 91 days > 90"
    assert (found["hh-old"]["facts"]["last_visit"], found["hh-old"]["facts"]["days"]) == ("2020-02-01", 150)
    assert found["hh-old"]["facts"]["counted_from"] == "last_visit"
    assert set(await anomalies(audit, "no_recent_visit", as_of="2020-07-01")) == {"hh-91", "hh-90", "hh-old"}


async def test_never_visited_counts_from_registration(audit):
    # brought in already registered: counted from the end of its identified_year
    await feed(audit.app, registry_event("household.registered", registered("hh-2015", 1, identified_year=2015),
                                         time=WRITTEN),
               registry_event("household.registered", registered("hh-2020", 3, identified_year=2020), time=WRITTEN),
               registry_event("household.registered", registered("hh-unknown", 5, identified_year=None),
                              time=WRITTEN))
    # registered through the procedure: counted from the day of the registering step
    candidate = registered("hh-proc", 7, identified_year=None, status="candidate")
    await feed(audit.app, registry_event("household.registered", candidate, time=WRITTEN),
               registry_transition("hh-proc", {**registered("hh-proc", 7, identified_year=2020), "version": 2},
                                   "register", "2020-04-01T15:00:00+08:00", from_status="candidate",
                                   to_status="registered"))
    found = await anomalies(audit, "no_recent_visit")
    assert set(found) == {"hh-2015"}
    facts = found["hh-2015"]["facts"]
    assert (facts["counted_from"], facts["identified_year"], facts["days"]) == ("identified_year", 2015, 1643)
    assert found["hh-2015"]["detail"] == "never visited since registration (identified in 2015): 1643 days > 90"
    later = await anomalies(audit, "no_recent_visit", as_of="2020-07-01")
    assert set(later) == {"hh-2015", "hh-proc"}
    proc = later["hh-proc"]["facts"]
    assert (proc["registered_on"], proc["registered_basis"], proc["days"]) == ("2020-04-01", "procedure", 91)
    assert "hh-2020" in await anomalies(audit, "no_recent_visit", as_of="2021-04-01")  # 91 days after 2020-12-31
    assert "hh-unknown" not in await anomalies(audit, "no_recent_visit", as_of="2030-01-01")  # no date to count from


async def test_ingestion_time_is_irrelevant(audit):
    # the same facts written in 2020 or in 2026, and projected again from the ledger, give the same finding
    await feed(audit.app, registry_event("household.registered", registered("hh-a", 1), time="2020-01-02T00:00:00"),
               registry_event("household.registered", registered("hh-b", 3), time=WRITTEN),
               registry_event("household.registered", registered("hh-c", 5, identified_year=2019),
                              time="2020-01-02T00:00:00"),
               registry_event("household.registered", registered("hh-d", 7, identified_year=2019), time=WRITTEN))
    await feed(audit.app, visit("hh-b", 3, "2020-02-01T09:00:00+08:00"),
               registry_event("visit.recorded", registered("hh-a", 1), time="2020-02-01T01:00:00",
                              visit={"visited_at": "2020-02-01T09:00:00+08:00"}))
    before = await anomalies(audit, "no_recent_visit")
    assert {h: f["facts"]["days"] for h, f in before.items()} == {"hh-a": 150, "hh-b": 150, "hh-c": 182, "hh-d": 182}
    await rebuild(audit.app.state.sessionmaker)
    after = await anomalies(audit, "no_recent_visit")
    assert {h: (f["facts"], f["detail"]) for h, f in after.items()} == \
        {h: (f["facts"], f["detail"]) for h, f in before.items()}


async def test_registry_transitions_are_exit_evidence(audit):
    """The registry sends its step as ``transition``: override, reason, actor and date reach the rule."""
    await feed(audit.app, registry_event("household.registered", registered("hh-x", 1), time=WRITTEN))
    proposed = {**registered("hh-x", 1), "version": 2}
    exited = {**registered("hh-x", 1, status="exited"), "version": 3, "exit_date": "2019-11-28"}
    await feed(audit.app,
               registry_transition("hh-x", proposed, "propose_exit", "2019-11-20T15:00:00+08:00",
                                   from_status="registered", to_status="registered", override=True,
                                   reason="乡镇认定", unmet=["income"]),
               registry_transition("hh-x", exited, "approve_exit", "2019-11-28T15:00:00+08:00",
                                   from_status="registered", to_status="exited", override=True, reason="乡镇认定",
                                   unmet=["income"]))
    found = await anomalies(audit, "exit_overridden")
    facts = found["hh-x"]["facts"]
    assert (facts["exit_date"], facts["override"], facts["unmet"]) == ("2019-11-28", True, ["income"])
    assert facts["override_reasons"] == ["乡镇认定"] and facts["deciders"] == ["office-7"]
    history = (await audit.get("/v1/audit/households/hh-x/history")).json()
    steps = history["current"]["exit_steps"]
    assert [(s["action"], s["at"][:10]) for s in steps] == [("propose_exit", "2019-11-20"), ("approve_exit", "2019-11-28")]


async def test_registry_pairings_are_dated_by_the_pairing(audit):
    await feed(audit.app, registry_event("household.registered", registered("hh-p", 9), time=WRITTEN))
    await feed(audit.app, pairing("hh-p", "cadre-a", "started", started="2016-03-01T09:00:00+08:00"),
               pairing("hh-p", "cadre-b", "started", started="2018-09-01T09:00:00+08:00"),
               pairing("hh-p", "cadre-a", "ended", started="2016-03-01T09:00:00+08:00",
                       ended="2018-09-15T10:00:00+08:00"))
    found = await anomalies(audit, "cadre_unpaired_before_exit")
    facts = found["hh-p"]["facts"]
    assert (facts["cadre_id"], facts["unpaired_on"], facts["replaced"]) == ("cadre-a", "2018-09-15", True)
    assert found["hh-p"]["detail"].startswith("cadre cadre-a unpaired on 2018-09-15 while the household has not exited")
    assert await anomalies(audit, "cadre_unpaired_before_exit", as_of="2018-09-14") == {}  # not yet unpaired then


async def test_default_as_of_is_the_configured_evaluation_date(databases, tmp_path):
    settings = AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"), log_json=False,
                             kafka_bootstrap="127.0.0.1:1", run_consumer=False, evaluation_date="2020-06-30")
    app = create_app(settings, id_hash_key="k", checkpoint_schedule=False)
    async with running_app(app, mint_token(settings, "audit:read")) as client:
        await feed(app, registry_event("household.registered", registered("hh-d", 1), time=WRITTEN),
                   visit("hh-d", 1, "2020-03-01T09:00:00+08:00"))
        body = (await client.get("/v1/supervision/anomalies", params={"rule": "no_recent_visit"})).json()
        assert body["as_of"] == "2020-06-30"
        assert [(i["household_id"], i["facts"]["days"]) for i in body["items"]] == [("hh-d", 121)]
