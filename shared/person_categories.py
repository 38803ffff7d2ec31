"""The household's person-level categories, derived from its living members (docs/registry.md).

低保 cover and 特困 are facts about persons: a two-person household with one 特困 person has one
特困 person, not two. The household list `categories` keeps `dibao`, `tekun_dispersed` and
`tekun_concentrated` only as a summary of its living members' flags (`Person.dibao_covered`,
`Person.tekun`); the registry recomputes it on every write with `derive_person_categories`. Pure
(no I/O), on the JSON form of a snapshot, so the registry's write path and its ledger import share it.

What a caller's household-level category means when no living member carries it:

* new on this write (created, or added by a patch or an import):
  - `dibao`: the household's whole cover (整户保障, the default of 001 L665-L667): every living member
    whose `dibao_covered` is not stated is flagged covered; if every living member says `false`, 422;
  - `tekun_*`: with exactly one living member, that member is flagged; otherwise 422 naming the members
    to flag (who is the 特困 person is never guessed);
* already stored without any member carrying it (a snapshot from before person-level flags): kept as
  it is; the benefits rules then read it as documented in services/benefits/rules/safety_net.py;
* stored and carried until this write, and no member carries it any more (flag removed, the member died
  or moved out): dropped.

A caller that removes such a category while a living member still carries it gets 422: the members'
flags are what count, so they are what must change.
"""
from __future__ import annotations

from typing import Any

TEKUN_CATEGORIES = {"tekun_dispersed": "dispersed", "tekun_concentrated": "concentrated"}
PERSON_CATEGORIES = ("dibao", *TEKUN_CATEGORIES)
_ZH = {"dibao": "低保户", "tekun_dispersed": "分散供养特困", "tekun_concentrated": "集中供养特困"}


def carries(member: dict, category: str) -> bool:
    """Whether a member's own flags give the household this category."""
    if member.get("deceased"):
        return False
    if category == "dibao":
        return member.get("dibao_covered") is True
    return member.get("tekun") == TEKUN_CATEGORIES[category]


def _carried(snapshot: dict | None, category: str) -> bool:
    return bool(snapshot) and any(carries(m, category) for m in snapshot.get("members") or [])


def _named(members: list[tuple[int, dict]]) -> str:
    return ", ".join(f"{m.get('id') or f'#{index + 1}'} {m.get('name') or ''}".strip() for index, m in members)


def _error(loc: list, zh: str, en: str) -> dict:
    return {"loc": loc, "msg": f"{zh} / {en}", "msg_zh": zh, "msg_en": en, "type": "person_category"}


def derive_person_categories(body: dict[str, Any], before: dict | None = None) -> list[dict]:
    """Make `body["categories"]` follow its living members' flags (flagging members where the module
    docstring says so), in place. Returns the problems as `{loc, msg, msg_zh, msg_en}`; empty = valid."""
    members = body.get("members") or []
    living = [(index, m) for index, m in enumerate(members) if not m.get("deceased")]
    sent = list(body.get("categories") or [])
    stored = set((before or {}).get("categories") or [])
    errors: list[dict] = []
    keep: set[str] = set()
    for category in PERSON_CATEGORIES:
        carried = any(carries(m, category) for _, m in living)
        if carried:
            if before is not None and category in stored and category not in sent:
                holders = [(i, m) for i, m in living if carries(m, category)]
                errors.append(_error(["body", "categories"],
                                     f"去掉了户类型“{_ZH[category]}”，但成员 {_named(holders)} 仍有此标记；请改成员的标记",
                                     f"categories drops {category} but members {_named(holders)} still carry it; "
                                     "change the members' flags instead"))
            keep.add(category)
        elif category not in sent:
            continue
        elif before is not None and category in stored:
            # Carried until now and no longer (unflagged, died, moved out) -> dropped; never carried
            # (stored before person-level flags) -> kept as it was.
            if not _carried(before, category):
                keep.add(category)
        else:
            problem = _flag_members(category, living)
            if problem:
                errors.append(problem)
            else:
                keep.add(category)
    ordered = [c for c in sent if c not in PERSON_CATEGORIES or c in keep]
    ordered += [c for c in PERSON_CATEGORIES if c in keep and c not in ordered]
    body["categories"] = ordered
    return errors


def _flag_members(category: str, living: list[tuple[int, dict]]) -> dict | None:
    """A category new on this write that no member carries: flag members as the docstring says, or say why not."""
    if category == "dibao":
        unstated = [m for _, m in living if m.get("dibao_covered") is None]
        if unstated:
            for member in unstated:
                member["dibao_covered"] = True
            return None
        return _error(["body", "categories"],
                      "户类型含“低保户”，但没有在世成员纳入低保（成员 dibao_covered 均为 false）；请标记纳入低保的成员",
                      "categories has dibao but no living member is covered (every member's dibao_covered is false); "
                      "flag the covered members")
    if len(living) == 1 and living[0][1].get("tekun") is None:
        living[0][1]["tekun"] = TEKUN_CATEGORIES[category]
        return None
    if not living:
        return _error(["body", "categories"], f"户类型含“{_ZH[category]}”，但本户没有在世成员",
                      f"categories has {category} but the household has no living member")
    return _error(["body", "categories"],
                  f"户类型含“{_ZH[category]}”，但没有成员标记为特困人员；请在成员 {_named(living)} 中标记"
                  f"特困供养（members[].tekun = \"{TEKUN_CATEGORIES[category]}\"）",
                  f"categories has {category} but no member is flagged as the 特困 person; flag them among members "
                  f"{_named(living)} (members[].tekun = \"{TEKUN_CATEGORIES[category]}\")")
