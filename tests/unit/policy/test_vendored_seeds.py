"""The seed copies under shared/policy/seeds/ are the originals, byte for byte (where the originals are here)."""
from __future__ import annotations

from pathlib import Path

import pytest

VENDORED = Path(__file__).resolve().parents[3] / "shared" / "policy" / "seeds"
ORIGINALS = Path(__file__).resolve().parents[4] / "shared" / "seeds"


def test_every_seed_is_vendored():
    assert sorted(p.name[:3] for p in VENDORED.glob("*.txt")) == ["000", "001", "002", "003", "004"]


@pytest.mark.skipif(not ORIGINALS.is_dir(), reason="the original seeds (../shared/seeds) are not on this machine")
def test_the_copies_are_exact():
    for original in sorted(ORIGINALS.glob("*.txt")):
        assert (VENDORED / original.name).read_bytes() == original.read_bytes(), original.name
