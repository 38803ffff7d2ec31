from __future__ import annotations

from services.registry.households.merge_patch import apply_merge_patch, changed_paths
from shared.events import Envelope


def test_merge_patch_follows_rfc7386():
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "list": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "list": [3], "new": {"x": 1}}
    assert apply_merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "list": [3], "new": {"x": 1}}
    assert target["c"] == {"d": "e", "f": "g"}  # the original is untouched


def test_changed_paths_names_each_leaf():
    before = {"income": {"year": 2019, "per_capita_net": "2800.00"}, "members": [{"health": "healthy"}]}
    after = {"income": {"year": 2019, "per_capita_net": "4200.00"}, "members": [{"health": "chronic"}]}
    assert changed_paths(before, after) == ["income.per_capita_net", "members.0.health"]
    assert changed_paths(before, before) == []


def test_envelope_round_trips_through_bytes():
    envelope = Envelope(source="registry", type="household.updated", subject="household/hh-1", sequence=3,
                        data={"household": {"id": "hh-1", "version": 3}}, actor="cadre-1")
    decoded = Envelope.from_bytes(envelope.to_bytes())
    assert decoded == envelope and decoded.specversion == "1.0"
