"""Policy coverage: is a region evaluated under a local pack on a date, or only under the national one?

Every local pack in the repository ends in 2020 (one in 2018), so a household evaluated on a
later date silently falls back to the national pack and gets far fewer programmes. Coverage
makes that visible: each evaluation, the benefits `/readyz` and the audit dashboard say when a
region is ``national_only`` and which local pack lapsed.

Pure functions over the public API of ``PackRegistry`` (``at``, ``names``, ``spec``): no I/O, no
clock. A date is judged on the pack versions governing it (``registry.at(day)``), as resolution is,
so a pack published with an effective date makes a region local from that date on.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypedDict

from shared.policy.resolution import PackRegistry, PackSpec

Coverage = Literal["local", "national_only"]


class Lapsed(TypedDict):
    pack: str
    valid_from: str
    valid_to: str | None


class CoverageResult(TypedDict):
    coverage: Coverage
    lapsed: Lapsed | None


def local_packs(registry: PackRegistry, region_code: str, on: dt.date) -> list[PackSpec]:
    """Packs governing ``on`` whose region is a non-empty prefix of ``region_code`` (the national root
    has region "")."""
    view = registry.at(on)
    return [spec for spec in (view.spec(name) for name in view.names())
            if spec.region and region_code.startswith(spec.region)]


def _distance_days(spec: PackSpec, on: dt.date) -> int:
    """How far ``on`` lies outside the pack's period (0 inside it)."""
    if on < spec.valid_from:
        return (spec.valid_from - on).days
    if spec.valid_to is not None and on > spec.valid_to:
        return (on - spec.valid_to).days
    return 0


def lapsed_pack(registry: PackRegistry, region_code: str, on: dt.date) -> Lapsed | None:
    """The most specific local pack of the region that is not valid on ``on``: longest region
    prefix first, then the one whose period ended (or starts) nearest to the date, then the name,
    so the answer is deterministic. None when the region never had a local pack."""
    out_of_period = [spec for spec in local_packs(registry, region_code, on) if not spec.valid_on(on)]
    if not out_of_period:
        return None
    best = min(out_of_period, key=lambda spec: (-len(spec.region), _distance_days(spec, on), spec.name))
    return {"pack": best.name, "valid_from": best.valid_from.isoformat(),
            "valid_to": best.valid_to.isoformat() if best.valid_to else None}


def coverage(registry: PackRegistry, region_code: str, on: dt.date) -> CoverageResult:
    """``local`` when a local pack of the region is valid on the date (``lapsed`` None); else
    ``national_only`` with ``lapsed`` naming the most specific local pack out of its period, or
    None for a region that never had one."""
    if any(spec.valid_on(on) for spec in local_packs(registry, region_code, on)):
        return {"coverage": "local", "lapsed": None}
    return {"coverage": "national_only", "lapsed": lapsed_pack(registry, region_code, on)}


def coverage_of_pack(registry: PackRegistry, pack: str, region_code: str, on: dt.date) -> CoverageResult:
    """Coverage of a decision already made under ``pack`` (a stored entitlement knows its pack, not
    the date it was evaluated on): national_only when that pack is the national root; ``lapsed`` is
    then the region's most specific local pack out of its period on ``on``. A pack this registry
    does not know (published elsewhere) is taken as local: only the root has region ""."""
    try:
        national = registry.spec(pack).region == ""
    except KeyError:
        national = False
    if not national:
        return {"coverage": "local", "lapsed": None}
    return {"coverage": "national_only", "lapsed": lapsed_pack(registry, region_code, on)}


def coverage_warning(region_code: str, on: dt.date, lapsed: Lapsed | None | dict[str, Any]) -> str:
    """One line, Chinese and English, for `/readyz` and the dashboard banner."""
    day = on.isoformat()
    if lapsed is None:
        return (f"区域 {region_code} 在 {day} 仅按国家政策包评估：没有本地政策包。"
                f" Region {region_code} is evaluated national_only on {day}: no local pack covers it.")
    if lapsed.get("valid_from") and lapsed["valid_from"] > day:
        return (f"区域 {region_code} 在 {day} 仅按国家政策包评估：{lapsed['pack']} 自 {lapsed['valid_from']} 起才生效。"
                f" Region {region_code} is evaluated national_only on {day}: pack {lapsed['pack']} "
                f"starts on {lapsed['valid_from']}.")
    return (f"区域 {region_code} 在 {day} 仅按国家政策包评估：{lapsed['pack']} 已于 {lapsed['valid_to']} 失效。"
            f" Region {region_code} is evaluated national_only on {day}: pack {lapsed['pack']} "
            f"lapsed on {lapsed['valid_to']}.")
