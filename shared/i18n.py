"""Problem titles, details and validation messages in the caller's language (Chinese first).

The words live in ``shared/messages/catalogue.yaml`` (data, not code): each entry is an English text or
template, as the code raises it, and its Chinese. Raise sites keep writing plain English (readable, greppable);
the answer is put into one language at the edge:

* ``negotiate(accept_language)`` → ``"zh"`` or ``"en"`` (q-values honoured; zh, zh-CN, zh-Hans, zh-TW… → zh);
* ``localize(text, lang)`` finds the entry whose English matches (``{name}`` placeholders match any text) and
  renders it in ``lang``; a legacy bilingual text ("区域之外 / Outside your area") is first split and its
  English half looked up, so a response never carries both languages;
* ``localize_problem(body, lang)`` does ``title``, ``detail`` and every ``errors[].msg`` (pydantic messages by
  their error ``type``: the catalogue's ``validation`` section has one entry per pydantic_core error type);
* ``ProblemLanguageMiddleware`` (pure ASGI, installed by ``shared.problems.install_problem_handlers``) applies
  it to every ``application/problem+json`` response, whoever built it (handlers, middlewares, routes), and
  adds ``Content-Language`` and ``Vary: Accept-Language``.

A text no entry matches is answered as it is (English) and counted in ``MISSES``: nothing is dropped; the
catalogue tests scan the code so that this stays the exception.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

log = logging.getLogger("i18n")

CATALOGUE_PATH = Path(__file__).parent / "messages" / "catalogue.yaml"
LANGUAGES = ("zh", "en")
DEFAULT = "en"
PROBLEM_MEDIA_TYPE = "application/problem+json"  # as shared.problems (which imports this module)

# Placeholders whose value is itself a message (a pydantic ``Value error, {error}``, a reason inside a
# detail): they are localized in turn.
NESTED = frozenset({"error", "reason", "message"})
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
# "中文 / English", "English / 中文", "中文。/ English" and "English (中文)"
_SPLIT = re.compile(r"\s*/\s+|\s+/\s*|。/|(?<=\.)\s+(?=[\u3400-\u9fff])|(?<=。)\s*(?=[A-Za-z])")

MISSES: Counter[str] = Counter()


# -- language negotiation ---------------------------------------------------------------------------

def negotiate(accept_language: str | None) -> str:
    """``"zh"`` when the caller prefers Chinese over English, ``"en"`` otherwise (RFC 9110 §12.5.4).

    Ranges are taken by q-value (ties in the order given); the first range that names a language we
    have wins, ``*`` meaning the default. ``q=0`` means "not this one".
    """
    if not accept_language:
        return DEFAULT
    ranges: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, *params = [p.strip() for p in part.split(";")]
        if not tag:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0  # an unreadable weight is not a preference
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        ranges.append((-q, index, tag.lower()))
    for negative_q, _, tag in sorted(ranges):
        if negative_q == 0.0:
            break
        primary = tag.split("-", 1)[0]
        if primary == "*":
            return DEFAULT
        if primary in LANGUAGES:
            return primary
    return DEFAULT


# -- the catalogue ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    en: str
    zh: str
    pattern: re.Pattern[str] | None  # None: a plain text, looked up exactly
    zh_pattern: re.Pattern[str] | None  # a Chinese-only raise site is found by its Chinese
    literal: int  # characters outside placeholders: the more, the more specific

    def render(self, lang: str, params: dict[str, str]) -> str:
        template = self.zh if lang == "zh" else self.en
        return _PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)), template)


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def _compile(en: str) -> re.Pattern[str] | None:
    parts = _PLACEHOLDER.split(en)
    if len(parts) == 1:
        return None
    regex, seen = [], set()
    for index, part in enumerate(parts):
        if index % 2 == 0:
            regex.append(re.escape(part))
        elif part in seen:  # the same value twice: the second must equal the first
            regex.append(f"(?P={part})")
        else:
            seen.add(part)
            regex.append(f"(?P<{part}>.*?)")
    return re.compile("".join(regex) + r"\Z", re.DOTALL)


def _entry(en: str, zh: str, *, by_chinese: bool = True) -> Entry:
    # Found by its Chinese too only when that has enough fixed text to be recognised ("{error}" matches all).
    by_chinese = by_chinese and len(_CJK.findall(_PLACEHOLDER.sub("", zh))) >= 2
    return Entry(en=en, zh=zh, pattern=_compile(en), zh_pattern=_compile(zh) if by_chinese else None,
                 literal=len(_PLACEHOLDER.sub("", en)))


class Catalogue:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.problem_types: dict[str, dict[str, str]] = dict(data.get("problem_types") or {})
        self.validation: dict[str, Entry] = {
            kind: _entry(str(e["en"]), str(e["zh"]), by_chinese=False) for kind, e in (data.get("validation") or {}).items()}
        self.messages: list[Entry] = [_entry(str(e["en"]), str(e["zh"])) for e in data.get("messages") or []]
        self.exact = {e.en: e for e in self.messages if e.pattern is None}
        # most specific first: "…; allowed: none" before "…; allowed: {allowed}"
        self.templates = sorted((e for e in [*self.messages, *self.validation.values()] if e.pattern is not None),
                                key=lambda e: -e.literal)
        self.exact.update({e.en: e for e in self.validation.values() if e.pattern is None and e.en not in self.exact})
        self.exact_zh = {e.zh: e for e in self.messages if _PLACEHOLDER.search(e.zh) is None}

    def match(self, english: str) -> tuple[Entry, dict[str, str]] | None:
        entry = self.exact.get(english)
        if entry is not None:
            return entry, {}
        for entry in self.templates:
            found = entry.pattern.match(english)
            if found is not None:
                return entry, found.groupdict()
        if _has_cjk(english):
            entry = self.exact_zh.get(english)
            if entry is not None:
                return entry, {}
            for entry in self.templates:
                found = entry.zh_pattern.match(english) if entry.zh_pattern is not None else None
                if found is not None:
                    return entry, found.groupdict()
        return None


@lru_cache(maxsize=1)
def catalogue() -> Catalogue:
    return Catalogue(yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8")))


# -- translating ------------------------------------------------------------------------------------

def _has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def _is_chinese(text: str) -> bool:
    """Mostly Chinese: English sentences may quote a term (低保) and Chinese ones an ID (JZ_METRICS_TOKEN)."""
    cjk = len(_CJK.findall(text))
    return cjk > 0 and cjk * 3 >= len(re.findall(r"[A-Za-z]", text))


def split_bilingual(text: str) -> tuple[str | None, str]:
    """(Chinese half or None, the rest) of a legacy bilingual text: "中文 / English", "English (中文)"."""
    if not _has_cjk(text):
        return None, text
    stripped = text.strip()
    paren = re.fullmatch(r"(.*?)\s*[（(]([^()（）]*)[)）]", stripped, re.DOTALL)
    if paren and not _has_cjk(paren.group(1)) and _is_chinese(paren.group(2)):
        return stripped, paren.group(1)
    for separator in _SPLIT.finditer(text):
        left, right = text[:separator.start()].strip(), text[separator.end():].strip()
        if separator.group(0) == "。/":
            left += "。"
        if left and right and _is_chinese(left) != _is_chinese(right):
            return (left, right) if _is_chinese(left) else (right, left)
    return None, text  # one language (maybe English quoting a Chinese term): looked up whole


def _localize_english(english: str, lang: str, depth: int) -> str | None:
    found = catalogue().match(english)
    if found is None:
        return None
    entry, params = found
    if depth < 3:
        params = {name: (localize(value, lang, _depth=depth + 1) if name in NESTED else value)
                  for name, value in params.items()}
    return entry.render(lang, params)


def localize(text: str, lang: str, *, _depth: int = 0) -> str:
    """``text`` (English, or a legacy bilingual text) in ``lang``; unknown text comes back in English."""
    if not isinstance(text, str) or not text:
        return text
    chinese, english = split_bilingual(text)
    rendered = _localize_english(english, lang, _depth)
    if rendered is not None:
        return rendered
    if chinese is None and _is_chinese(text):  # Chinese already (or translated by an inner layer)
        return text
    if _depth == 0:
        MISSES[english] += 1
        log.debug("no catalogue entry for %r", english)
    return chinese if lang == "zh" and chinese is not None else english


def covered(text: str) -> bool:
    """The catalogue has an entry for ``text`` (its English half, for a legacy bilingual text)."""
    return catalogue().match(split_bilingual(text)[1]) is not None


def validation_message(error: dict, lang: str) -> str:
    """One ``errors[]`` item's message: by its pydantic ``type`` (with ``ctx`` when present), else by text."""
    msg = error.get("msg")
    entry = catalogue().validation.get(error.get("type") or "")
    if entry is not None and isinstance(msg, str):
        params: dict[str, str] | None = None
        if isinstance(error.get("ctx"), dict):
            params = {k: str(v) for k, v in error["ctx"].items()}
        elif entry.pattern is None:
            params = {} if msg == entry.en else None
        else:
            found = entry.pattern.match(msg)
            params = found.groupdict() if found else None
        if params is not None:
            if lang == "zh" and "expected" in params:  # "'a', 'b' or 'c'"
                params["expected"] = params["expected"].replace("' or '", "' 或 '")
            params = {name: (localize(value, lang, _depth=1) if name in NESTED else value)
                      for name, value in params.items()}
            return entry.render(lang, params)
    return localize(msg, lang) if isinstance(msg, str) else msg


def localize_problem(body: dict, lang: str) -> dict:
    """A problem+json body with ``title``, ``detail`` and ``errors[].msg`` in ``lang``."""
    out = dict(body)
    for field in ("title", "detail"):
        if isinstance(out.get(field), str):
            out[field] = localize(out[field], lang)
    if isinstance(out.get("errors"), list):
        out["errors"] = [{**e, "msg": validation_message(e, lang)} if isinstance(e, dict) and "msg" in e else e
                         for e in out["errors"]]
    return out


# -- the ASGI layer ---------------------------------------------------------------------------------

def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class ProblemLanguageMiddleware:
    """Puts every problem+json response into the caller's language (pure ASGI: no BaseHTTPMiddleware).

    Only problem bodies are held back and rewritten (they are small); every other response streams through
    untouched.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict = {}
        chunks: list[bytes] = []

        async def send_localized(message) -> None:
            if message["type"] == "http.response.start":
                if is_problem_start(message.get("headers", [])):
                    held["start"] = message
                    return
            elif message["type"] == "http.response.body" and "start" in held:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                # negotiated only for a problem: every other response passes without parsing the header
                lang = negotiate(_header(scope, b"accept-language"))
                await self._answer(send, held.pop("start"), b"".join(chunks), lang)
                return
            await send(message)

        await self.app(scope, receive, send_localized)

    @staticmethod
    async def _answer(send, start: dict, body: bytes, lang: str) -> None:
        start, body = localized_answer(start, body, lang)
        await send(start)
        await send({"type": "http.response.body", "body": body})


_PROBLEM_MEDIA_TYPE_BYTES = PROBLEM_MEDIA_TYPE.encode()


def is_problem_start(headers) -> bool:
    """A response start's headers say ``application/problem+json`` (any parameters, any case)."""
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    return content_type.split(b";")[0].strip().lower() == _PROBLEM_MEDIA_TYPE_BYTES


def localized_answer(start: dict, body: bytes, lang: str) -> tuple[dict, bytes]:
    """A held problem's start message and body in ``lang``, with Content-Length, Content-Language and Vary."""
    try:
        problem = json.loads(body)
        if isinstance(problem, dict):
            body = json.dumps(localize_problem(problem, lang), ensure_ascii=False).encode()
    except (ValueError, UnicodeDecodeError):
        pass  # not JSON after all: answered as it came
    vary = [v.decode("latin-1") for k, v in start.get("headers", []) if k.lower() == b"vary"]
    headers = [(k, v) for k, v in start.get("headers", [])
               if k.lower() not in (b"content-length", b"content-language", b"vary")]
    vary_values = [part.strip() for value in vary for part in value.split(",") if part.strip()]
    if "accept-language" not in {v.lower() for v in vary_values}:
        vary_values.append("Accept-Language")
    headers += [(b"content-length", str(len(body)).encode()), (b"content-language", lang.encode()),
                (b"vary", ", ".join(vary_values).encode("latin-1"))]
    return {**start, "headers": headers}, body
