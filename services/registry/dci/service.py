"""DCI transactions: what a message asks for, checked, stored, answered (docs/dci.md).

A request is taken in ``accept`` (inside the HTTP request: checks, one transaction row and, for the
asynchronous paths, one pending delivery; nothing is computed). The answer is computed by ``answer``: for
an asynchronous request by the worker, for a synchronous one in the request. Both run the same code, so
``/registry/search`` and ``/registry/sync/search`` give the same records.

Every search request is an access to person data: one ``partner.access`` event per request item goes to
``jz.access.v1`` through the registry's outbox, in the transaction that stores the answer (like the bank and
insurer look-ups of benefits), so audit knows who searched for what and which households were returned.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.dci import queries
from services.registry.dci.envelope import (CALLBACK_ACTION, CALLBACK_PATH, MAX_ID, EnvelopeError, Header, LOCALE, callback_header,
                                            new_correlation_id, now_utc, parse_instant, timestamp)
from services.registry.tables import dci_deliveries, dci_subscriptions, dci_transactions, outbox
from shared.auth import Principal
from shared.clock import china_now
from shared.config import TOPIC_ACCESS
from shared.events import Envelope
from shared.idcard import mask_id_number
from shared.outbox import add_to_outbox
from shared.signing import canonical_json

REG_TYPE = "ns:org:RegistryType:Social"
#: the registry event types a subscription may ask for (the spec's enum, and UPDATE: any new household version)
EVENT_TYPES = {"REGISTER": "REGISTER", "DEREGISTER": "DEREGISTER", "NEWHOUSEHOLDMEMBER": "NewHouseHoldMember",
               "SPDCI:COMMON:REGISTRYEVENTTYPE:NEWHOUSEHOLDMEMBER": "NewHouseHoldMember",
               "SPDCI-COMMON:REGISTRYEVENTTYPE:NEWHOUSEHOLDMEMBER": "NewHouseHoldMember", "UPDATE": "UPDATE"}
ENTITIES = {"household": "Household", "family": "Household", "member": "Member", "person": "Member"}
TXN_TYPES = {"search": "search", "subscribe": "subscribe", "subscibe": "subscribe", "unsubscribe": "unsubscribe"}
NOTIFY_RECORD_TYPE = {"Household": "spdci-extensions-social:Household", "Member": "spdci-extensions-social:Person"}


@dataclass(frozen=True)
class Caller:
    """Whose rights an answer is computed with (stored with the transaction: the worker has no token)."""
    subject: str
    client_id: str | None
    scopes: list[str]
    area: str | None

    @classmethod
    def of(cls, principal: Principal) -> "Caller":
        return cls(principal.subject, principal.client_id, sorted(principal.scopes), principal.area)

    def principal(self) -> Principal:
        return Principal(subject=self.subject, scopes=frozenset(self.scopes), area=self.area, client_id=self.client_id)


def body_hash(header: dict, message: Any) -> str:
    return hashlib.sha256(canonical_json({"header": header, "message": message})).hexdigest()


# ---------------------------------------------------------------- structural checks (before ACK)


def _bad(field: str, en: str, zh: str, reason: str | None = None) -> EnvelopeError:
    return EnvelopeError("err.request.bad", f"message.{field} {en}", f"message.{field} {zh}", reason=reason)


def _short_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID:
        raise _bad(field, f"must be a string of 1 to {MAX_ID} characters.", f"须为 1 至 {MAX_ID} 个字符的字符串。")
    return value


def check_message(action: str, message: Any) -> None:
    """The message's shape: what must be there for the request to be taken at all (ERR otherwise). What an
    item asks for (its query, its event type) is judged per item in the answer (``rjct`` with a reason)."""
    if not isinstance(message, dict):
        raise _bad("", "must be an object.", "须为对象。")
    _short_text(message.get("transaction_id"), "transaction_id")
    if action == "txn-status":
        request = message.get("txnstatus_request")
        if not isinstance(request, dict):
            raise _bad("txnstatus_request", "must be an object.", "须为对象。")
        _short_text(request.get("reference_id"), "txnstatus_request.reference_id")
        for name in ("txn_type", "attribute_type"):
            if not isinstance(request.get(name), str):
                raise _bad(f"txnstatus_request.{name}", "must be a string.", "须为字符串。")
        if "attribute_value" not in request:
            raise _bad("txnstatus_request.attribute_value", "is required.", "为必填项。")
        _locale(request.get("locale"), "txnstatus_request.locale")
        return
    if action == "unsubscribe":
        codes = message.get("subscription_codes")
        if not isinstance(codes, list) or not codes:
            raise _bad("subscription_codes", "must be a non-empty list.", "须为非空列表。")
        for index, code in enumerate(codes):
            _short_text(code, f"subscription_codes[{index}]")
        return
    name, criteria = {"search": ("search_request", "search_criteria"),
                      "subscribe": ("subscribe_request", "subscribe_criteria")}[action]
    items = message.get(name)
    if not isinstance(items, list) or not items:
        raise _bad(name, "must be a non-empty list.", "须为非空列表。")
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise _bad(where, "must be an object.", "须为对象。")
        _short_text(item.get("reference_id"), f"{where}.reference_id")
        if not isinstance(item.get(criteria), dict):
            raise _bad(f"{where}.{criteria}", "must be an object.", "须为对象。")
        _locale(item.get("locale"), f"{where}.locale")


def _locale(value: Any, field: str) -> None:
    if value is not None and (not isinstance(value, str) or not LOCALE.match(value)):
        raise _bad(field, "must be a three-letter ISO 639-3 code such as zho or eng.",
                   "须为三个小写字母的 ISO 639-3 语言代码，如 zho、eng。")


# ---------------------------------------------------------------- taking a request


@dataclass(frozen=True)
class Taken:
    correlation_id: str
    replayed: bool = False
    delivered: bool = False  # a replay whose callback went out already (NACK: nothing more will come)
    response: dict | None = None  # a replayed synchronous answer: {header, message}


async def accept(session: AsyncSession, header: Header, message: dict, caller: Principal, *, mode: str,
                 callback_url: str | None) -> Taken:
    """Store the transaction (and its pending callback); a resend of the same message answers what the first
    did, the same message id with another body is refused. Commits."""
    digest = body_hash(header.raw, message)
    found = await _previous(session, header)
    if found is not None:
        return await _replay(session, found, digest)
    correlation_id = new_correlation_id()
    now = now_utc()
    await session.execute(insert(dci_transactions).values(
        correlation_id=correlation_id, sender_id=header.sender_id, message_id=header.message_id, body_hash=digest,
        transaction_id=message["transaction_id"], action=header.action, mode=mode, caller=asdict(Caller.of(caller)),
        header=header.raw, message=message, status="pdng", created_at=now))
    if callback_url is not None:
        await session.execute(insert(dci_deliveries).values(
            dedup_key=f"callback:{correlation_id}", kind="callback", sender_id=header.sender_id,
            correlation_id=correlation_id, url=callback_url, action=CALLBACK_ACTION[header.action], status="pending",
            attempts=0, next_attempt_at=now, created_at=now))
    try:
        await session.commit()
    except IntegrityError:  # the same message id, taken by a concurrent request a moment ago
        await session.rollback()
        found = await _previous(session, header)
        if found is None:
            raise
        return await _replay(session, found, digest)
    return Taken(correlation_id)


async def _previous(session: AsyncSession, header: Header):
    return (await session.execute(select(dci_transactions).where(
        dci_transactions.c.sender_id == header.sender_id, dci_transactions.c.message_id == header.message_id))).first()


async def _replay(session: AsyncSession, row, digest: str) -> Taken:
    if row.body_hash != digest:
        raise EnvelopeError("err.request.bad", "This message_id was already used by this sender for another "
                            "message; use a new message_id.", "该发送方已用此 message_id 发送过另一报文，请换用新的 "
                            "message_id。", reason="rjct.message_id.duplicate")
    delivered = await session.scalar(select(dci_deliveries.c.status).where(
        dci_deliveries.c.dedup_key == f"callback:{row.correlation_id}")) == "delivered"
    response = ({"header": row.header, "message": row.response}
                if row.mode == "sync" and row.response is not None else None)
    return Taken(row.correlation_id, replayed=True, delivered=delivered, response=response)


# ---------------------------------------------------------------- computing the answer


@dataclass
class Answer:
    message: dict
    status: str  # succ | rjct (the callback header's status)
    total: int
    completed: int
    reason_message: str | None = None


async def answer(session: AsyncSession, row, *, registry_id: str, max_page_size: int) -> tuple[dict, dict]:
    """The callback header and message for a stored transaction; stores them and stages the access events
    (the caller commits)."""
    caller = Caller(**row.caller).principal()
    context = Context(session, caller, row, registry_id, max_page_size)
    handler = {"search": context.search, "subscribe": context.subscribe, "unsubscribe": context.unsubscribe,
               "txn-status": context.txn_status}[row.action]
    result = await handler()
    header = callback_header(CALLBACK_ACTION[row.action], registry_id=registry_id, receiver_id=row.sender_id,
                             status=result.status, total=result.total, completed=result.completed,
                             reason_message=result.reason_message)
    await session.execute(update(dci_transactions).where(dci_transactions.c.correlation_id == row.correlation_id)
                          .values(status=result.status, response=result.message, completed_at=now_utc(),
                                  header=header if row.mode == "sync" else row.header))
    return header, result.message


def _item_reply(item: dict, status: str, reason: str | None = None, text: str | None = None, **extra: Any) -> dict:
    reply = {"reference_id": item.get("reference_id"), "timestamp": timestamp(), "status": status, **extra}
    if reason:
        reply["status_reason_code"] = reason
    if text:
        reply["status_reason_message"] = text[:999]
    if item.get("locale"):
        reply["locale"] = item["locale"]
    return reply


def _duplicates(items: list[dict]) -> set[int]:
    seen, dup = set(), set()
    for index, item in enumerate(items):
        if item.get("reference_id") in seen:
            dup.add(index)
        seen.add(item.get("reference_id"))
    return dup


def _item_time_ok(item: dict) -> bool:
    return item.get("timestamp") is None or parse_instant(item.get("timestamp")) is not None


def _entity(value: Any, default: str = "Household") -> str | None:
    if value is None:
        return default
    return ENTITIES.get(str(value).strip().lower())


class Context:
    def __init__(self, session: AsyncSession, caller: Principal, row, registry_id: str, max_page_size: int) -> None:
        self.session, self.caller, self.row = session, caller, row
        self.registry_id, self.max_page_size = registry_id, max_page_size
        self.message = row.message

    def _finish(self, name: str, replies: list[dict], extra: dict | None = None) -> Answer:
        ok = sum(r["status"] == "succ" for r in replies)
        status = "succ" if ok else "rjct"
        reason = None if ok == len(replies) else f"{len(replies) - ok} of {len(replies)} requests rejected"
        body = {"transaction_id": self.message["transaction_id"], "correlation_id": self.row.correlation_id,
                name: replies, **(extra or {})}
        return Answer(body, status, len(replies), len(replies), reason)

    async def _each(self, items: list[dict], answer_one) -> list[dict]:
        """Each request item's reply: a repeated reference_id or a zone-less timestamp is rejected, the rest
        answered by ``answer_one``."""
        duplicates = _duplicates(items)
        replies = []
        for index, item in enumerate(items):
            if index in duplicates:
                replies.append(_item_reply(item, "rjct", "rjct.reference_id.duplicate",
                                           "reference_id 在本报文中重复 / reference_id repeats within this message"))
            elif not _item_time_ok(item):
                replies.append(_item_reply(item, "rjct", "rjct.timestamp.invalid",
                                           "timestamp 须带时区 / timestamp must be ISO 8601 with its time zone"))
            else:
                replies.append(await answer_one(item))
        return replies

    # -- search

    async def search(self) -> Answer:
        return self._finish("search_response", await self._each(self.message["search_request"], self._search_one))

    async def _search_one(self, item: dict) -> dict:
        criteria = item["search_criteria"]
        entity = _entity(criteria.get("response_entity"))
        try:
            if entity is None:
                raise queries.QueryError("rjct.search_criteria.invalid",
                                         "response_entity must be Household, Family or Member.",
                                         "response_entity 须为 Household、Family 或 Member。")
            parsed = queries.parse_criteria(criteria.get("query_type"), criteria.get("query"), entity=entity)
            sort = queries.parse_sort(criteria.get("sort"), entity)
            page_size, page_number = queries.parse_pagination(criteria.get("pagination"),
                                                              max_page_size=self.max_page_size)
            page = await queries.search(self.session, self.caller, parsed, entity=entity, sort=sort,
                                        page_size=page_size, page_number=page_number, as_of=china_now().date(),
                                        clear=self.caller.is_admin)
        except queries.QueryError as exc:
            await self._record_access(item, criteria, None, error=exc.reason_code)
            return _item_reply(item, "rjct", exc.reason_code, f"{exc.message_zh} / {exc.message_en}")
        await self._record_access(item, criteria, page)
        data = {"version": "1.0.0", "reg_type": REG_TYPE, "reg_records": page.records}
        if criteria.get("reg_event_type"):
            data["reg_event_type"] = criteria["reg_event_type"]
        return _item_reply(item, "succ", data=data, pagination={"page_size": page_size, "page_number": page_number,
                                                                "total_count": page.total_count})

    async def _record_access(self, item: dict, criteria: dict, page, *, error: str | None = None) -> None:
        """One ``partner.access`` event per search request, committed with the answer."""
        caller = self.caller
        client_id = caller.client_id or caller.subject
        query = criteria.get("query")
        id_number = None
        if criteria.get("query_type") == "idtype-value" and isinstance(query, dict) and isinstance(query.get("value"), str):
            value = query["value"].strip()
            id_number = mask_id_number(value) if len(value) == 18 else None
        households = sorted({_household_of(r) for r in (page.records if page else []) if _household_of(r)})
        outcome = {"transaction_id": self.message["transaction_id"], "correlation_id": self.row.correlation_id,
                   "reference_id": item.get("reference_id"), "query_type": criteria.get("query_type"),
                   "response_entity": criteria.get("response_entity") or "Household",
                   "total_count": page.total_count if page else 0, "returned": len(page.records) if page else 0,
                   "household_ids": households[:100]}
        if error:
            outcome["rejected"] = error
        now = now_utc()
        data = {"client_id": client_id, "scope": "dci", "endpoint": f"/registry/{'sync/' if self.row.mode == 'sync' else ''}search",
                "id_number": id_number, "decision_id": None, "decision": "found" if households else "not_found",
                "time": now.isoformat(), "sender_id": self.row.sender_id, "outcome": outcome}
        if len(households) == 1:
            data["household_id"] = households[0]
        envelope = Envelope(source="registry", type="partner.access", subject=f"client/{client_id}", time=now,
                            data=data, actor=caller.subject)
        await add_to_outbox(self.session, outbox, TOPIC_ACCESS, client_id, envelope)

    # -- subscribe / unsubscribe

    async def subscribe(self) -> Answer:
        return self._finish("subscribe_response",
                            await self._each(self.message["subscribe_request"], self._subscribe_one))

    async def _subscribe_one(self, item: dict) -> dict:
        criteria = item["subscribe_criteria"]
        event_type = EVENT_TYPES.get(str(criteria.get("reg_event_type") or "").strip().upper())
        if event_type is None:
            return _item_reply(item, "rjct", "rjct.notify_types.invalid",
                               "reg_event_type 须为 REGISTER、DEREGISTER、NewHouseHoldMember 或 UPDATE（本登记不含 PAYMENT）"
                               " / reg_event_type must be REGISTER, DEREGISTER, NewHouseHoldMember or UPDATE "
                               "(PAYMENT is not a registry event)")
        entity = _entity(criteria.get("response_entity"))
        filter_type = criteria.get("filter_type") or "expression"
        try:
            if entity is None:
                raise queries.QueryError("rjct.notify_details.invalid",
                                         "response_entity must be Household, Family or Member.",
                                         "response_entity 须为 Household、Family 或 Member。")
            if "filter" not in criteria:
                raise queries.QueryError("rjct.notify_details.invalid", "subscribe_criteria.filter is required.",
                                         "subscribe_criteria.filter 为必填项。")
            queries.parse_criteria(filter_type, criteria["filter"], entity=entity,
                                   invalid_code="rjct.notify_details.invalid")
            start, end = _window(criteria.get("frequency"))
        except queries.QueryError as exc:
            return _item_reply(item, "rjct", exc.reason_code, f"{exc.message_zh} / {exc.message_en}")
        existing = (await self.session.execute(select(dci_subscriptions.c.code).where(
            dci_subscriptions.c.sender_id == self.row.sender_id, dci_subscriptions.c.status == "subscribe",
            dci_subscriptions.c.reg_event_type == event_type, dci_subscriptions.c.response_entity == entity,
            dci_subscriptions.c.filter_type == filter_type))).scalars().all()
        for code in existing:
            same = await self.session.scalar(select(dci_subscriptions.c.filter).where(dci_subscriptions.c.code == code))
            if canonical_json(same) == canonical_json(criteria["filter"]):
                return _item_reply(item, "rjct", "rjct.event.already_subscribed",
                                   f"已有相同订阅 {code} / the same subscription exists: {code}")
        code = "sub-" + uuid.uuid4().hex
        now = now_utc()
        notify_uri = await self._notify_uri()
        await self.session.execute(insert(dci_subscriptions).values(
            code=code, sender_id=self.row.sender_id, correlation_id=self.row.correlation_id,
            reference_id=item["reference_id"], caller=self.row.caller, reg_event_type=event_type,
            filter_type=filter_type, filter=criteria["filter"], response_entity=entity, notify_uri=notify_uri,
            frequency=criteria.get("frequency"), start_time=start, end_time=end, locale=item.get("locale"),
            status="subscribe", created_at=now))
        subscription = {"version": "1.0.0", "code": code, "status": "subscribe", "timestamp": timestamp(now),
                        "reg_type": REG_TYPE, "reg_event_type": event_type, "filter_type": filter_type,
                        "filter": criteria["filter"], "notify_record_type": NOTIFY_RECORD_TYPE[entity]}
        if criteria.get("frequency") is not None:
            subscription["frequency"] = criteria["frequency"]
        return _item_reply(item, "succ", subscriptions=[subscription])

    async def _notify_uri(self) -> str:
        """Notifications go where the subscribe callback goes, at the sender's /registry/notify."""
        url = await self.session.scalar(select(dci_deliveries.c.url).where(
            dci_deliveries.c.dedup_key == f"callback:{self.row.correlation_id}"))
        return url[: -len(CALLBACK_PATH["subscribe"])] + CALLBACK_PATH["notify"]

    async def unsubscribe(self) -> Answer:
        codes = list(dict.fromkeys(self.message["subscription_codes"]))
        rows = {r.code: r for r in (await self.session.execute(select(dci_subscriptions).where(
            dci_subscriptions.c.code.in_(codes), dci_subscriptions.c.sender_id == self.row.sender_id))).all()}
        statuses, problems = [], []
        now = now_utc()
        for code in codes:
            row = rows.get(code)
            if row is None:
                problems.append(("rjct.subscription_code.invalid", f"{code}: 无此订阅 / no such subscription of this sender"))
            elif row.status == "unsubscribe":
                problems.append(("rjct.event.already_unsubscribed", f"{code}: 已退订 / already unsubscribed"))
                statuses.append({"code": code, "status": "unsubscribe"})
            else:
                await self.session.execute(update(dci_subscriptions).where(dci_subscriptions.c.code == code)
                                           .values(status="unsubscribe", unsubscribed_at=now))
                statuses.append({"code": code, "status": "unsubscribe"})
        ok = len(codes) - len(problems)
        body = {"transaction_id": self.message["transaction_id"], "correlation_id": self.row.correlation_id,
                "timestamp": timestamp(now), "status": "succ" if not problems else "rjct",
                "subscription_status": statuses}
        if problems:
            body["status_reason_code"] = problems[0][0]
            body["status_reason_message"] = "; ".join(text for _, text in problems)[:999]
        return Answer(body, "succ" if ok else "rjct", len(codes), len(codes),
                      None if not problems else f"{len(problems)} of {len(codes)} codes not unsubscribed")

    # -- txn status

    async def txn_status(self) -> Answer:
        request = self.message["txnstatus_request"]
        txn_type = TXN_TYPES.get(str(request["txn_type"]).lower())
        kind, value = request["attribute_type"], request["attribute_value"]
        found = None
        if txn_type is not None:
            query = select(dci_transactions).where(dci_transactions.c.sender_id == self.row.sender_id,
                                                   dci_transactions.c.action == txn_type,
                                                   dci_transactions.c.correlation_id != self.row.correlation_id)
            if kind == "correlation_id" and isinstance(value, str):
                found = (await self.session.execute(query.where(dci_transactions.c.correlation_id == value))).first()
            elif kind == "transaction_id" and isinstance(value, str):
                found = (await self.session.execute(query.where(dci_transactions.c.transaction_id == value)
                                                    .order_by(dci_transactions.c.created_at.desc()))).first()
            elif kind == "reference_id_list" and isinstance(value, list):
                found = await self._by_reference_ids(query, txn_type, {v for v in value if isinstance(v, str)})
        body_status = _status_of(found, txn_type) if found is not None else None
        body = {"transaction_id": self.message["transaction_id"], "correlation_id": self.row.correlation_id,
                "txnstatus_response": {"txn_type": request["txn_type"], "txn_status": body_status or {
                    "transaction_id": value if kind == "transaction_id" and isinstance(value, str) else "",
                    "correlation_id": value if kind == "correlation_id" and isinstance(value, str) else "",
                    "search_response": []}}}
        reason = None
        if txn_type is None:
            reason = "txn_type 须为 search、subscribe 或 unsubscribe / txn_type must be search, subscribe or unsubscribe"
        elif kind not in ("transaction_id", "correlation_id", "reference_id_list"):
            reason = ("attribute_type 须为 transaction_id、reference_id_list 或 correlation_id / attribute_type must be "
                      "transaction_id, reference_id_list or correlation_id")
        elif found is None:
            reason = "未找到该发送方的此项交易 / no such transaction of this sender"
        return Answer(body, "succ" if found is not None else "rjct", 1, 1, reason)

    async def _by_reference_ids(self, query, txn_type: str, wanted: set[str]):
        field, criteria = {"search": ("search_request", None), "subscribe": ("subscribe_request", None),
                           "unsubscribe": (None, None)}[txn_type]
        if not wanted or field is None:
            return None
        for row in (await self.session.execute(query.order_by(dci_transactions.c.created_at.desc()).limit(1000))).all():
            if wanted & {item.get("reference_id") for item in row.message.get(field) or [] if isinstance(item, dict)}:
                return row
        return None


def _status_of(row, txn_type: str) -> dict:
    """A stored transaction's answer as txn status reports it (pending items while the worker is at it)."""
    if row.response is not None:
        return row.response
    field = {"search": "search_response", "subscribe": "subscribe_response"}.get(txn_type)
    pending = {"transaction_id": row.transaction_id, "correlation_id": row.correlation_id}
    if field:
        source = row.message.get("search_request" if txn_type == "search" else "subscribe_request") or []
        pending[field] = [{"reference_id": item.get("reference_id"), "timestamp": timestamp(row.created_at),
                           "status": "pdng"} for item in source if isinstance(item, dict)]
    else:
        pending.update({"timestamp": timestamp(row.created_at), "status": "pdng"})
    return pending


def _household_of(record: dict) -> str | None:
    return record.get("household_identifier")


def _window(frequency: Any) -> tuple[datetime | None, datetime | None]:
    if frequency is None:
        return None, None
    if not isinstance(frequency, dict):
        raise queries.QueryError("rjct.notify_details.invalid", "frequency must be an object.", "frequency 须为对象。")
    start, end = frequency.get("start_time"), frequency.get("end_time")
    parsed = [parse_instant(v) if v is not None else None for v in (start, end)]
    if any(v is not None and p is None for v, p in zip((start, end), parsed)):
        raise queries.QueryError("rjct.notify_details.invalid", "frequency.start_time and end_time must be ISO 8601 "
                                 "date-times with their time zone.", "frequency.start_time、end_time 须为带时区的 ISO 8601 时间。")
    if parsed[0] and parsed[1] and parsed[1] <= parsed[0]:
        raise queries.QueryError("rjct.notify_details.invalid", "frequency.end_time must be after start_time.",
                                 "frequency.end_time 须晚于 start_time。")
    return parsed[0], parsed[1]


def as_of_today() -> date:
    return china_now().date()


async def transaction(session: AsyncSession, correlation_id: str):
    return (await session.execute(select(dci_transactions).where(
        dci_transactions.c.correlation_id == correlation_id))).first()
