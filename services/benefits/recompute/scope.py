"""Which households a bulk recompute or a simulation covers."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ColumnElement

from services.benefits.tables import household_snapshots

COUNTY_CODE_LENGTH = 6


class Scope(BaseModel):
    """``all``; ``region`` = administrative code prefix (province, city, county, township);
    ``village`` = one village code."""
    model_config = ConfigDict(extra="forbid")

    kind: Literal["region", "village", "all"]
    code: str | None = Field(None, pattern=r"^\d{2,12}$", description="Administrative code (digits only)")

    @model_validator(mode="after")
    def _code_matches_kind(self) -> "Scope":
        if self.kind == "all" and self.code:
            raise ValueError("scope 'all' takes no code")
        if self.kind != "all" and not self.code:
            raise ValueError(f"scope '{self.kind}' needs a code")
        return self

    def conditions(self) -> list[ColumnElement[bool]]:
        columns = household_snapshots.c
        if self.kind == "village":
            return [columns.village_code == self.code]
        if self.kind == "region":
            # region_code is county-level; a township or village prefix is matched on the village code.
            if len(self.code) <= COUNTY_CODE_LENGTH:
                return [columns.region_code.like(f"{self.code}%")]
            return [columns.village_code.like(f"{self.code}%")]
        return []

    def within(self, area: str | None) -> bool:
        """Whether an area-limited caller may act on this whole scope."""
        return area is None or (self.kind != "all" and self.code.startswith(area))
