"""docs/partners.md lists the purpose vocabulary exactly as the service holds it."""
from __future__ import annotations

from pathlib import Path

from services.benefits.credit.purposes import PURPOSES

DOC = Path(__file__).resolve().parents[3] / "docs" / "partners.md"


def test_every_purpose_code_is_in_the_docs_table_with_its_labels():
    text = DOC.read_text(encoding="utf-8")
    for purpose in PURPOSES:
        row = f"| `{purpose.code}` | {purpose.label_zh} | {purpose.label_en} | "
        assert row in text, row
        line = next(l for l in text.splitlines() if l.startswith(row))
        assert ("**refused**" in line) is (not purpose.productive)
        assert all(word in line for word in purpose.synonyms)
