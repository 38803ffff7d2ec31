"""Packs published at run time: check a candidate pack, and say what it changes. Pure, no I/O.

An office writes a pack (YAML, or JSON, which YAML reads too) and, before publishing it:

* ``validate_pack_text`` checks it against ``PackSpec``, the known programme codes, its ``extends``
  chain in every period against the packs in force (files and publications), its dates, and its
  citations (a seed that exists and lines inside it, or ``default_not_in_seeds`` with a note). Each
  problem names the key, the YAML line where it can be found, and says what is wrong in Chinese and
  in English. Nothing is cut short: every problem found is listed.
* ``diff_pack`` compares it with the pack in force of the same name, or with its parent for a new
  pack: parameters added, removed, changed (old → new, with the pack each value comes from),
  programmes enabled / disabled, and validity changes.

Storage, the audit event and the recompute are the benefits service's (``services/benefits/policy``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.policy.resolution import PackRegistry, PackSpec, PolicyPackError, ResolvedPolicy, _jsonable

#: A pack is a page or two of YAML; the largest shipped one is about 12 kB.
MAX_PACK_CHARS = 200_000
MAX_NAME_CHARS = 64  # the columns of policy_publications
SEEDS_DIR = Path(__file__).parent / "seeds"
_LINE_RANGE = re.compile(r"^L(\d+)(?:\s*-\s*L(\d+))?$")


@dataclass
class PackProblem:
    key: str
    zh: str
    en: str
    line: int | None = None

    def view(self) -> dict[str, Any]:
        return {"key": self.key, "line": self.line, "message": f"{self.zh} / {self.en}", "zh": self.zh, "en": self.en}


@dataclass
class CheckedPack:
    """The outcome of a check: the spec when it parsed, and every problem found."""
    spec: PackSpec | None
    text: str
    problems: list[PackProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems

    def view(self) -> dict[str, Any]:
        return {"valid": self.ok, "pack": self.spec.name if self.spec else None,
                "version": self.spec.version if self.spec else None,
                "problems": [problem.view() for problem in self.problems]}


class _PackLoader(yaml.SafeLoader):
    """Safe YAML without aliases: ``*name`` could make a small text expand into a huge value."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a pack",
                                              event.start_mark)
        return super().compose_node(parent, index)


def _unconstructible(node: yaml.Node, path: tuple = ()) -> tuple[tuple, yaml.Node] | None:
    """The first scalar YAML cannot turn into a value (a date such as 2025-13-31), with its path."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            found = _unconstructible(value, (*path, getattr(key, "value", "?")))
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _unconstructible(item, (*path, index))
            if found:
                return found
    elif isinstance(node, yaml.ScalarNode):
        try:
            yaml.SafeLoader("").construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError):
            return path, node
    return None


def _parse(text: str) -> tuple[Any, yaml.Node | None, list[PackProblem]]:
    try:
        loader = _PackLoader(text)  # the reader refuses control characters right here
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        return None, None, [PackProblem("(yaml)", f"不允许的字符 #x{exc.character:04x}",
                                        f"character #x{exc.character:04x} is not allowed", line)]
    try:
        node = loader.get_single_node()
        try:
            return (loader.construct_document(node) if node is not None else None), node, []
        except (ValueError, TypeError, OverflowError) as exc:
            path, bad = _unconstructible(node) or ((), node)
            return None, None, [PackProblem(_key(path), f"取值无效：{bad.value if bad is not node else exc}",
                                            f"invalid value: {bad.value if bad is not node else exc}",
                                            bad.start_mark.line + 1)]
    except RecursionError:
        return None, None, [PackProblem("(yaml)", "嵌套过深", "nested too deeply")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        return None, None, [PackProblem("(yaml)", f"YAML 语法错误：{problem}", f"invalid YAML: {problem}", line)]
    finally:
        loader.dispose()


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """The line of the deepest node on the path ``loc`` (1-based)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                         None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


# Pydantic's messages, in Chinese; anything else is named by its English text.
_ZH_BY_TYPE = {
    "missing": "缺少必填项", "extra_forbidden": "不允许的键（拼写错误？）",
    "string_pattern_mismatch": "格式不符", "string_type": "应为文本", "date_from_datetime_parsing": "日期无效",
    "date_parsing": "日期无效（应为 YYYY-MM-DD）", "date_type": "应为日期 YYYY-MM-DD", "dict_type": "应为映射",
    "list_type": "应为列表", "model_type": "应为映射", "string_too_short": "不能为空",
}
_ZH_BY_MESSAGE = (
    ("needs a source", "需要出处 {seed, lines}，或 default_not_in_seeds: true 并附说明 note"),
    ("default_not_in_seeds needs a note", "default_not_in_seeds 需要说明 note（数值从何而来）"),
    ("unknown programme code", "未知的项目代码"),
    ("valid_to is before valid_from", "valid_to 早于 valid_from"),
)


def _zh(error: dict) -> str:
    for needle, text in _ZH_BY_MESSAGE:
        if needle in error["msg"]:
            return text
    return _ZH_BY_TYPE.get(error["type"], "取值无效")


def _key(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(root)"


def _citation_problems(spec: PackSpec, node) -> list[PackProblem]:
    seeds = {path.name[:3]: path for path in SEEDS_DIR.glob("[0-9][0-9][0-9]_*.txt")}
    problems = []
    for name, parameter in spec.parameters.items():
        if parameter.source is None:
            continue
        key, line = f"parameters.{name}.source", _line_of(node, ("parameters", name, "source"))
        path = seeds.get(parameter.source.seed)
        if path is None:
            problems.append(PackProblem(key, f"种子文件 {parameter.source.seed} 不存在（已有：{', '.join(sorted(seeds))}）",
                                        f"seed {parameter.source.seed} does not exist (known: {', '.join(sorted(seeds))})",
                                        line))
            continue
        length = len(path.read_text(encoding="utf-8").splitlines())
        for part in parameter.source.lines.split(","):
            match = _LINE_RANGE.match(part.strip())
            if match is None:
                problems.append(PackProblem(key, f"行号 {part.strip()!r} 格式应为 L12 或 L12-L15",
                                            f"lines {part.strip()!r} should read L12 or L12-L15", line))
                continue
            first, last = int(match[1]), int(match[2] or match[1])
            if not 1 <= first <= last <= length:
                problems.append(PackProblem(key, f"行号 {part.strip()} 超出种子 {parameter.source.seed} 的范围（共 {length} 行）",
                                            f"lines {part.strip()} are outside seed {parameter.source.seed} "
                                            f"({length} lines)", line))
    return problems


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "boolean" if isinstance(value, bool) else "null"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def _type_problems(spec: PackSpec, parent: ResolvedPolicy | None, node) -> list[PackProblem]:
    """A value restated in another shape than the one it inherits breaks the rules that read it."""
    if parent is None:
        return []
    problems = []
    for name, parameter in spec.parameters.items():
        if not parent.has(name):
            continue
        inherited = parent.param(name)
        old, new = _kind(inherited), _kind(parameter.value)
        if old != new:
            problems.append(PackProblem(f"parameters.{name}.value", f"类型应与继承值相同（{old}），实为 {new}",
                                        f"expected a {old} like the inherited value, got a {new}",
                                        _line_of(node, ("parameters", name, "value"))))
        elif old == "mapping":
            missing = sorted(set(inherited) - set(parameter.value))
            if missing:
                problems.append(PackProblem(f"parameters.{name}.value",
                                            f"缺少继承表中的键：{', '.join(map(str, missing))}（整表替换，须写全）",
                                            f"lacks keys of the inherited table: {', '.join(map(str, missing))} "
                                            "(a pack restates a table whole)",
                                            _line_of(node, ("parameters", name, "value"))))
    return problems


def _not_finite(value: Any) -> bool:
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(_not_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_not_finite(item) for item in value)
    return False


def _number_problems(spec: PackSpec, node) -> list[PackProblem]:
    """.inf and .nan are YAML numbers but no amount: no rule can pay them, no database stores them."""
    found = [(("parameters", name, "value"), parameter.value) for name, parameter in spec.parameters.items()]
    found += [(("targets", name), value) for name, value in spec.targets.items()]
    return [PackProblem(_key(loc), "数值须为有限数（不可为 .inf / .nan）", "numbers must be finite (no .inf / .nan)",
                        _line_of(node, loc)) for loc, value in found if _not_finite(value)]


def newest_publication_date(registry: PackRegistry, name: str) -> dt.date | None:
    dates = [p.effective_from for p in registry.publications() if p.spec.name == name]
    return max(dates) if dates else None


def validate_pack_text(text: str, registry: PackRegistry, *, effective_from: dt.date | None = None) -> CheckedPack:
    """Every problem of a candidate pack, checked against the packs in force (``registry``)."""
    if len(text) > MAX_PACK_CHARS:
        return CheckedPack(None, text, [PackProblem("(size)", f"文件过大：{len(text)} 字符，上限 {MAX_PACK_CHARS}",
                                                    f"too large: {len(text)} characters, at most {MAX_PACK_CHARS}")])
    raw, node, problems = _parse(text)
    if problems:
        return CheckedPack(None, text, problems)
    if not isinstance(raw, dict):
        return CheckedPack(None, text, [PackProblem("(root)", "政策包须为映射（键: 值）", "a pack must be a mapping", 1)])
    try:
        spec = PackSpec.model_validate(raw)
    except ValidationError as exc:
        return CheckedPack(None, text, [PackProblem(_key(e["loc"]), _zh(e), e["msg"], _line_of(node, e["loc"]))
                                        for e in exc.errors()])
    checked = CheckedPack(spec, text)
    day = effective_from or spec.valid_from
    problems = checked.problems
    for name in ("name", "version"):
        if len(getattr(spec, name)) > MAX_NAME_CHARS:
            problems.append(PackProblem(name, f"最多 {MAX_NAME_CHARS} 个字符", f"at most {MAX_NAME_CHARS} characters",
                                        _line_of(node, (name,))))
    if spec.valid_to is not None and day > spec.valid_to:
        problems.append(PackProblem("effective_from", f"生效日期 {day} 晚于 valid_to {spec.valid_to}，该版本永不适用",
                                    f"effective date {day} is after valid_to {spec.valid_to}: it would never apply"))
    newest = newest_publication_date(registry, spec.name)
    if effective_from is not None and newest is not None and effective_from < newest:
        problems.append(PackProblem("effective_from", f"生效日期不得早于该包最新发布的生效日期 {newest}",
                                    f"the effective date may not be before that of the newest publication of "
                                    f"this pack ({newest})"))
    if spec.extends == spec.name:
        problems.append(PackProblem("extends", "政策包不能继承自身", "a pack cannot extend itself",
                                    _line_of(node, ("extends",))))
    else:
        try:
            candidate = registry.with_publication(spec, day)
        except PolicyPackError as exc:
            problems.append(PackProblem(exc.key, f"继承链无效：{exc.problem}", f"invalid extends chain: {exc.problem}",
                                        _line_of(node, (exc.key,))))
        else:
            view = candidate.at(day)
            parent = view.resolved(spec.extends) if spec.extends in view.names() else None
            problems.extend(_type_problems(spec, parent, node))
    problems.extend(_citation_problems(spec, node))
    problems.extend(_number_problems(spec, node))
    return checked


def content_hash(spec: PackSpec) -> str:
    """The same pack however its text is laid out (comments, key order, quoting) hashes the same."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _view_on(registry: PackRegistry, day: dt.date | None) -> PackRegistry:
    return registry.at(day) if day is not None else registry


def diff_pack(spec: PackSpec, registry: PackRegistry, *, effective_from: dt.date | None = None) -> dict[str, Any]:
    """What publishing ``spec`` changes, against the same-named pack in force on the effective date
    (the newest version when no date is given), or its parent for a new pack."""
    day = effective_from
    before = _view_on(registry, day)
    after = _view_on(registry.with_publication(spec, day or spec.valid_from), day)
    new = after.resolved(spec.name)
    if spec.name in before.names():
        old, relation = before.resolved(spec.name), "same_name"
    elif spec.extends and spec.extends in before.names():
        old, relation = before.resolved(spec.extends), "parent"
    else:
        old, relation = None, None
    old_parameters = old.parameters() if old else {}
    new_parameters = new.parameters()
    added, removed, changed = [], [], []
    for name in sorted(set(old_parameters) | set(new_parameters)):
        a, b = old_parameters.get(name), new_parameters.get(name)
        if a is None:
            added.append({"name": name, "value": _jsonable(b.value), "origin": b.origin, "source": b.citation()})
        elif b is None:
            removed.append({"name": name, "value": _jsonable(a.value), "origin": a.origin})
        elif a.value != b.value:
            changed.append({"name": name, "old": _jsonable(a.value), "new": _jsonable(b.value),
                            "old_origin": a.origin, "new_origin": b.origin, "source": b.citation(),
                            "default_not_in_seeds": b.default_not_in_seeds})
    validity = []
    if old is not None:
        for name in ("version", "region", "valid_from", "valid_to", "extends"):
            a, b = getattr(old.spec, name), getattr(spec, name)
            if a != b:
                validity.append({"field": name, "old": _jsonable(a), "new": _jsonable(b)})
    old_programs = old.programs if old else frozenset()
    return {
        "pack": spec.name, "version": spec.version,
        "effective_from": day.isoformat() if day else None,
        "against": {"pack": old.pack, "version": old.version, "relation": relation} if old else None,
        "parameters": {"added": added, "removed": removed, "changed": changed},
        "programs": {"enabled": sorted(new.programs - old_programs), "disabled": sorted(old_programs - new.programs)},
        "validity": validity,
    }


def pack_text_of(value: str | dict) -> str:
    """A pack given as an object (JSON body) is kept as YAML text, like a file."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)
