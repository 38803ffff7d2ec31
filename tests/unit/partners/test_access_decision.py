"""How supervision reads an access record's decision (services/audit/supervision/access.py)."""
from __future__ import annotations

import pytest

from services.audit.supervision.access import access_decision


@pytest.mark.parametrize(("data", "expected"), [
    # What benefits sends now: the yes/no itself, and what followed.
    ({"decision": "subsidised", "eligible": True, "outcome": {"principal": "36000.00"}},
     ("subsidised", True, {"principal": "36000.00"})),
    ({"decision": "refused", "eligible": False}, ("refused", False, None)),
    ({"decision": "lookup: 2 submitted, 1 covered", "outcome": {"covered": 1}},
     ("lookup: 2 submitted, 1 covered", None, {"covered": 1})),
    # Records from before: a paid stay said only "settled", a loan report only "issuance".
    ({"decision": "settled"}, ("settled", True, None)),
    ({"decision": "not_covered"}, ("not_covered", False, None)),
    ({"decision": "eligible"}, ("eligible", True, None)),
    ({"decision": "issuance"}, ("issuance", None, None)),
    ({"decision": "12 persons"}, ("12 persons", None, None)),
    ({}, (None, None, None)),
])
def test_access_decision(data, expected):
    assert access_decision(data) == expected
