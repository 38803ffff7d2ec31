"""The vendored copy of the contract examples (used by the demo district and by clones without
../shared) must stay identical to ../shared/spec/examples."""
from __future__ import annotations

import pytest

from tests.helpers import SHARED_EXAMPLES, VENDORED_EXAMPLES


def test_vendored_examples_match_the_shared_contract():
    if not SHARED_EXAMPLES.is_dir():
        pytest.skip("../shared/spec/examples is not beside this clone")
    shared = {p.name: p.read_bytes() for p in SHARED_EXAMPLES.glob("*.json")}
    vendored = {p.name: p.read_bytes() for p in VENDORED_EXAMPLES.glob("*.json")}
    assert shared and vendored == shared
