"""Whether this run checked the exchanges against the public DCI specification too (tests/integration/registry/
dci/spec.py): skipped, with the reason, when the file is not on the machine; then only the registry's own
document was used. When it is, the corrected file must load and name the paths the registry serves."""
from __future__ import annotations

import pytest

from tests.integration.registry.dci import spec

SERVED = ("/registry/search", "/registry/subscribe", "/registry/unsubscribe", "/registry/txn/status",
          "/registry/sync/search", "/registry/sync/txn/status")


def test_the_public_specification_is_loaded_when_it_is_on_the_machine():
    if spec.public() is None:
        pytest.skip(f"the public DCI spec is not at {spec.PUBLIC_SPEC} (set JZ_DCI_SPEC; docs/dci.md says where "
                    "to get it): exchanges were validated against the registry's own document only")
    paths = list((spec.public().spec / "paths").keys())
    for path in SERVED + ("/registry/on-search", "/registry/notify", "/registry/on-subscribe"):
        assert path in paths, path
    assert len(spec.ERRATA) == 10  # each correction named; a new one is a decision, not a drift
