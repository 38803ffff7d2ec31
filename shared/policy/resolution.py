"""Policy packs: load, validate and resolve the YAML files under `shared/policy/packs/`.

A library, not a service: benefits computes with it and audit reads targets and
thresholds from it, so neither imports the other.

A pack names its region (administrative-code prefix), validity period, parent
(`extends`) and the programmes it enables, and carries parameters, each with its
citation (`source: {seed, lines}`) or an explicit `default_not_in_seeds` note.

Resolution (`resolve_pack`) picks the most specific pack (longest region prefix)
valid on the date, then resolves every parameter up the `extends` chain, nearest
pack first, remembering where each value came from. Parent packs are consulted for
parameters whatever their own validity dates: a county pack that extends a
provincial pack inherits its values even after the provincial period ended,
because the county document is the one in force.

Publications (packs published at run time, see `shared/policy/publication.py`): each is a
version of a pack that governs evaluation dates from its `effective_from` on; before that
date the previous version (the file, or an earlier publication) keeps governing, so an
evaluation on an earlier date never changes. `PackRegistry.at(day)` is the plain registry
of the versions governing that day; `resolve` goes through it.

Programmes: a pack's `programs` add to its parent's; `programs_disabled` removes.
Numbers in `value` become Decimal (floats through their repr), so rules never see
a float.
"""
from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.policy.programs import KNOWN_PROGRAMS

POLICIES_DIR = Path(__file__).parent / "packs"


class PolicyPackError(ValueError):
    """A pack file is unreadable or invalid; the message names file, key and problem."""

    def __init__(self, file: str | Path, key: str, problem: str):
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{self.file}: key '{key}': {problem}")


class PolicyParameterMissing(KeyError):
    pass


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: str = Field(pattern=r"^\d{3}$")
    lines: str = Field(min_length=1)


class ParameterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any
    source: Source | None = None
    default_not_in_seeds: bool = False
    note: str | None = None

    @model_validator(mode="after")
    def _cited_or_marked(self) -> "ParameterSpec":
        if self.source is None and not self.default_not_in_seeds:
            raise ValueError("needs a source {seed, lines} or default_not_in_seeds: true with a note")
        if self.default_not_in_seeds and not self.note:
            raise ValueError("default_not_in_seeds needs a note saying where the value comes from")
        return self


class PackSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9-]+$")
    version: str
    region: str = Field(pattern=r"^\d{0,12}$")
    valid_from: dt.date
    valid_to: dt.date | None = None
    extends: str | None = None
    description: str = ""
    programs: list[str] = Field(default_factory=list)
    programs_disabled: list[str] = Field(default_factory=list)
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    targets: dict[str, Any] = Field(default_factory=dict)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("programs", "programs_disabled")
    @classmethod
    def _known_programs(cls, codes: list[str]) -> list[str]:
        unknown = sorted(set(codes) - KNOWN_PROGRAMS)
        if unknown:
            raise ValueError(f"unknown programme code(s): {', '.join(unknown)}")
        return codes

    @model_validator(mode="after")
    def _period_ordered(self) -> "PackSpec":
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        return self

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def to_policy_value(value: Any) -> Any:
    """Numbers to Decimal, recursively; everything else unchanged."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: to_policy_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_policy_value(item) for item in value]
    return value


class ResolvedParameter(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    name: str
    value: Any
    origin: str
    source: Source | None
    default_not_in_seeds: bool = False
    note: str | None = None

    def citation(self) -> dict[str, str] | None:
        return self.source.model_dump() if self.source else None


class ResolvedPolicy:
    """The pack in force for one region and date, with parameters resolved up its chain."""

    __slots__ = ("spec", "chain", "_parameters", "_programs")

    def __init__(self, spec: PackSpec, chain: list[PackSpec]):
        self.spec = spec
        self.chain = [pack.name for pack in chain]
        self._parameters: dict[str, ResolvedParameter] = {}
        for pack in reversed(chain):  # root first, so nearer packs overwrite
            for name, parameter in pack.parameters.items():
                self._parameters[name] = ResolvedParameter(
                    name=name, value=to_policy_value(parameter.value), origin=pack.name,
                    source=parameter.source, default_not_in_seeds=parameter.default_not_in_seeds,
                    note=parameter.note,
                )
        programs: set[str] = set()
        for pack in reversed(chain):
            programs |= set(pack.programs)
            programs -= set(pack.programs_disabled)
        self._programs = frozenset(programs)

    @property
    def pack(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def programs(self) -> frozenset[str]:
        return self._programs

    def enabled(self, program_code: str) -> bool:
        return program_code in self._programs

    def has(self, name: str) -> bool:
        return name in self._parameters

    def param(self, name: str, default: Any = ...) -> Any:
        try:
            return self._parameters[name].value
        except KeyError:
            if default is not ...:
                return default
            raise PolicyParameterMissing(f"pack {self.pack} (chain {self.chain}) has no parameter {name!r}") from None

    def source(self, name: str) -> dict[str, str] | None:
        """Citation of a parameter; None when it is a documented default not in the seeds."""
        parameter = self._parameters.get(name)
        return parameter.citation() if parameter else None

    def origin(self, name: str) -> str:
        return self._parameters[name].origin

    def parameter(self, name: str) -> ResolvedParameter:
        return self._parameters[name]

    def parameters(self) -> dict[str, ResolvedParameter]:
        return dict(self._parameters)

    def describe(self) -> dict[str, Any]:
        return {
            "pack": self.pack, "version": self.version, "region": self.spec.region,
            "valid_from": self.spec.valid_from.isoformat(),
            "valid_to": self.spec.valid_to.isoformat() if self.spec.valid_to else None,
            "extends": self.spec.extends, "chain": list(self.chain), "description": self.spec.description,
            "programs": sorted(self._programs),
            "parameters": {
                name: {
                    "value": _jsonable(parameter.value), "origin": parameter.origin,
                    "source": parameter.citation(), "default_not_in_seeds": parameter.default_not_in_seeds,
                    "note": parameter.note,
                }
                for name, parameter in sorted(self._parameters.items())
            },
            "targets": _jsonable(self.spec.targets),
        }

    def policy_ref(self) -> dict[str, Any]:
        return {"pack": self.pack, "version": self.version, "chain": list(self.chain)}

    def __repr__(self) -> str:
        return f"ResolvedPolicy({self.pack} {self.version}, chain={self.chain})"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.date,)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def _error_key(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def load_pack_text(text: str, where: str | Path) -> PackSpec:
    """A pack from its YAML text; PolicyPackError names ``where`` (a file, a publication)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "(document)"
        raise PolicyPackError(where, line, f"invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, dict):
        raise PolicyPackError(where, "(root)", "a pack must be a mapping")
    try:
        return PackSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        problems = "; ".join(f"{_error_key(e['loc'])}: {e['msg']}" for e in exc.errors()[1:])
        problem = first["msg"] + (f" (also: {problems})" if problems else "")
        raise PolicyPackError(where, _error_key(first["loc"]), problem) from None


def load_pack_file(path: Path) -> PackSpec:
    spec = load_pack_text(path.read_text(encoding="utf-8"), path)
    if spec.name != path.stem:
        raise PolicyPackError(path, "name", f"name {spec.name!r} does not match the file name {path.stem!r}")
    return spec


@dataclass(frozen=True)
class Publication:
    """A pack version published at run time: it governs evaluation dates from ``effective_from``."""
    id: int
    spec: PackSpec
    effective_from: dt.date


class PackRegistry:
    """All packs of one folder, validated together (names unique, parents exist, no cycles),
    plus the versions published at run time (each checked in every period it governs)."""

    def __init__(self, packs: dict[str, PackSpec], files: dict[str, Path] | None = None,
                 publications: Iterable[Publication] = ()):
        self._base = dict(packs)
        self._files = dict(files or {})
        # Ordered by (effective_from, id): the versions governing a day are a prefix of this list.
        self._publications = tuple(sorted(publications, key=lambda p: (p.effective_from, p.id)))
        self._effective = [p.effective_from for p in self._publications]
        self._packs = self._overlay(len(self._publications))  # the newest version of every pack
        self._resolved: dict[str, ResolvedPolicy] = {}
        self._views: dict[int, PackRegistry] = {}
        self._check_chains()
        if self._publications:
            # A chain must hold in every period, not only the newest: build each period's view now.
            for day in sorted(set(self._effective)) + [dt.date.min]:
                self.at(day)

    def _overlay(self, count: int) -> dict[str, PackSpec]:
        packs = dict(self._base)
        for publication in self._publications[:count]:
            packs[publication.spec.name] = publication.spec
        return packs

    @classmethod
    def from_folder(cls, folder: str | Path) -> "PackRegistry":
        folder = Path(folder)
        packs: dict[str, PackSpec] = {}
        files: dict[str, Path] = {}
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            spec = load_pack_file(path)
            if spec.name in packs:
                raise PolicyPackError(path, "name", f"duplicate pack name {spec.name!r} (also in {files[spec.name]})")
            packs[spec.name] = spec
            files[spec.name] = path
        if not packs:
            raise PolicyPackError(folder, "(folder)", "no *.yaml policy packs found")
        return cls(packs, files)

    def _where(self, name: str) -> str | Path:
        if name in self._base and self._base[name] is self._packs.get(name):
            return self._files.get(name, name)
        return f"publication of {name}"

    def _check_chains(self) -> None:
        for spec in self._packs.values():
            seen = [spec.name]
            parent = spec.extends
            while parent is not None:
                if parent not in self._packs:
                    raise PolicyPackError(self._where(spec.name), "extends", f"unknown parent pack {parent!r}")
                if parent in seen:
                    raise PolicyPackError(self._where(spec.name), "extends", f"cycle {' -> '.join(seen + [parent])}")
                seen.append(parent)
                parent = self._packs[parent].extends

    def at(self, day: dt.date) -> "PackRegistry":
        """The plain registry of the pack versions governing ``day`` (itself without publications)."""
        if not self._publications:
            return self
        count = bisect.bisect_right(self._effective, day)
        view = self._views.get(count)
        if view is None:
            packs = self._overlay(count)
            files = {name: path for name, path in self._files.items() if packs.get(name) is self._base.get(name)}
            try:
                view = PackRegistry(packs, files)
            except PolicyPackError as exc:
                period = f"from {self._effective[count - 1].isoformat()}" if count else "before any publication"
                raise PolicyPackError(exc.file, exc.key, f"{exc.problem} (in the period {period})") from None
            self._views[count] = view
        return view

    def publications(self) -> tuple[Publication, ...]:
        return self._publications

    def with_publications(self, publications: Iterable[Publication]) -> "PackRegistry":
        """The same files with these publications added (raises PolicyPackError on a broken chain)."""
        return PackRegistry(self._base, self._files, [*self._publications, *publications])

    def with_publication(self, spec: PackSpec, effective_from: dt.date) -> "PackRegistry":
        """A candidate: as if ``spec`` were published now, effective from that date."""
        next_id = max((p.id for p in self._publications), default=0) + 1
        return self.with_publications([Publication(next_id, spec, effective_from)])

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every version of a pack, oldest first: the file (no effective date) and its publications."""
        found = []
        if name in self._base:
            found.append({"version": self._base[name].version, "effective_from": None, "publication_id": None})
        found += [{"version": p.spec.version, "effective_from": p.effective_from.isoformat(), "publication_id": p.id}
                  for p in self._publications if p.spec.name == name]
        return found

    def chain_of(self, name: str) -> list[PackSpec]:
        chain = [self._packs[name]]
        while chain[-1].extends is not None:
            chain.append(self._packs[chain[-1].extends])
        return chain

    def resolved(self, name: str) -> ResolvedPolicy:
        if name not in self._resolved:
            if name not in self._packs:
                raise KeyError(f"unknown policy pack {name!r}")
            self._resolved[name] = ResolvedPolicy(self._packs[name], self.chain_of(name))
        return self._resolved[name]

    def resolve(self, region_code: str, as_of: dt.date) -> ResolvedPolicy:
        view = self.at(as_of)
        if view is not self:
            return view.resolve(region_code, as_of)
        candidates = [
            spec for spec in self._packs.values()
            if region_code.startswith(spec.region) and spec.valid_on(as_of)
        ]
        if not candidates:
            raise LookupError(f"no policy pack for region {region_code!r} valid on {as_of.isoformat()}")
        # Longest prefix wins; among equals the latest start, then the name, so the choice is deterministic.
        best = max(candidates, key=lambda spec: (len(spec.region), spec.valid_from, spec.name))
        return self.resolved(best.name)

    def with_overrides(self, name: str, overrides: dict[str, Any]) -> "PackRegistry":
        """A copy in which pack ``name`` states these parameter values (policy simulation).

        The override sits in the named pack (in every version of it), as if its file said so:
        packs extending it inherit the new value unless they set the parameter themselves. A
        parameter the pack only inherits keeps its citation; values must already be policy
        values (Decimal for numbers, see ``to_policy_value``).
        """
        resolved = self.resolved(name)
        for key in overrides:
            if not resolved.has(key):
                raise PolicyParameterMissing(f"pack {name} (chain {resolved.chain}) has no parameter {key!r}")

        def overridden(spec: PackSpec) -> PackSpec:
            parameters = dict(spec.parameters)
            for key, value in overrides.items():
                current = resolved.parameter(key)
                parameters[key] = ParameterSpec(value=value, source=current.source,
                                                default_not_in_seeds=current.default_not_in_seeds,
                                                note=current.note or None)
            return spec.model_copy(update={"parameters": parameters})

        base = {**self._base, name: overridden(self._base[name])} if name in self._base else self._base
        publications = [Publication(p.id, overridden(p.spec), p.effective_from) if p.spec.name == name else p
                        for p in self._publications]
        return PackRegistry(base, self._files, publications)

    def names(self) -> list[str]:
        return sorted(self._packs)

    def spec(self, name: str) -> PackSpec:
        return self._packs[name]

    def list_packs(self) -> list[dict[str, Any]]:
        return [
            {"name": spec.name, "version": spec.version, "region": spec.region,
             "valid_from": spec.valid_from.isoformat(),
             "valid_to": spec.valid_to.isoformat() if spec.valid_to else None,
             "extends": spec.extends, "description": spec.description,
             **({"versions": self.versions(spec.name)} if self._publications else {})}
            for spec in sorted(self._packs.values(), key=lambda s: s.name)
        ]

    def describe_pack(self, name: str) -> dict[str, Any]:
        return self.resolved(name).describe()


def load_packs(folder: str | Path = POLICIES_DIR) -> PackRegistry:
    return PackRegistry.from_folder(folder)


@lru_cache(maxsize=1)
def default_registry() -> PackRegistry:
    return load_packs(POLICIES_DIR)


def resolve_pack(region_code: str, as_of: dt.date, registry: PackRegistry | None = None) -> ResolvedPolicy:
    return (registry or default_registry()).resolve(region_code, as_of)


def list_packs(registry: PackRegistry | None = None) -> list[dict[str, Any]]:
    return (registry or default_registry()).list_packs()


def describe_pack(name: str, registry: PackRegistry | None = None) -> dict[str, Any]:
    return (registry or default_registry()).describe_pack(name)
