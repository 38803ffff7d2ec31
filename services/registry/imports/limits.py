"""Limits on what an uploaded spreadsheet may cost to read: rows, unpacked size, compression ratio.

An XLSX is a zip archive; a small one can unpack to gigabytes (a zip bomb). Before openpyxl sees the
file, ``check_archive`` refuses it on the central directory's own numbers (total unpacked size, each
member's ratio, member count), and then inflates every member's raw data once with zlib (not through
``ZipFile.open``, which believes the declared size), counting the bytes actually produced and stopping
at the limits — a central directory that lies about sizes does not get through. Runs in the import
worker, never on the event loop. Pure: the file in, a ``Problem`` (413) out or nothing.
"""
from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shared.problems import Problem

TOO_LARGE = "https://jingzhun.dev/problems/upload-too-large"
INFLATE_CHUNK = 1 << 20


@dataclass(frozen=True)
class UploadLimits:
    max_rows: int = 200_000  # data rows per sheet
    max_unpacked_bytes: int = 1 << 30  # XLSX: all members inflated
    max_compression_ratio: float = 50.0  # XLSX: unpacked / packed per member (real ledgers: 5–15)
    max_members: int = 1_000

    @classmethod
    def from_settings(cls, settings: Any) -> UploadLimits:
        return cls(max_rows=settings.import_max_rows, max_unpacked_bytes=settings.import_max_unpacked_bytes,
                   max_compression_ratio=settings.import_max_compression_ratio)


def too_large(zh: str, en: str, **extra: Any) -> Problem:
    return Problem(413, "上传文件超出限制 / Upload exceeds a limit", f"{zh} / {en}", type_=TOO_LARGE, **extra)


def is_zip(head: bytes, filename: str | None) -> bool:
    return (filename or "").lower().endswith((".xlsx", ".xlsm")) or head[:2] == b"PK"


def check_archive(source: str | Path | IO[bytes], limits: UploadLimits) -> None:
    """Raise a 413 Problem if the archive would unpack beyond the limits; a broken archive is left to
    the reader (which answers 422 Unreadable file)."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError):
        return
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise too_large(f"压缩包有 {len(members)} 个成员，上限 {limits.max_members}",
                            f"the workbook has {len(members)} archive members; the limit is {limits.max_members}",
                            limit=limits.max_members)
        declared = sum(member.file_size for member in members)
        _check_total(declared, limits)
        for member in members:
            _check_ratio(member.filename, member.file_size, member.compress_size, limits)
        produced = 0
        for member in members:
            produced = _inflate_counting(archive, member, produced, limits)


def _inflate_counting(archive: zipfile.ZipFile, member: zipfile.ZipInfo, produced: int,
                      limits: UploadLimits) -> int:
    """Inflate one member's raw bytes with zlib (not through ``ZipFile.open``, which trusts the declared
    size), counting what comes out; returns the running total."""
    if member.compress_type == zipfile.ZIP_STORED:
        produced += member.compress_size
        _check_total(produced, limits)
        return produced
    if member.compress_type != zipfile.ZIP_DEFLATED:
        raise Problem(422, "无法读取的文件 / Unreadable file",
                      f"工作簿成员 {member.filename} 使用了不支持的压缩方式 / the workbook member {member.filename} "
                      "uses a compression method other than deflate")
    handle = archive.fp
    handle.seek(member.header_offset)
    local = handle.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        return produced  # a broken archive: the reader answers 422
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    handle.seek(member.header_offset + 30 + name_length + extra_length)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    member_bytes, left = 0, member.compress_size
    try:
        while left > 0 and not inflater.eof:
            packed = handle.read(min(INFLATE_CHUNK, left))
            if not packed:
                break
            left -= len(packed)
            pending = packed
            while pending and not inflater.eof:
                out = inflater.decompress(pending, INFLATE_CHUNK)  # bounded output per step
                pending = inflater.unconsumed_tail
                member_bytes += len(out)
                produced += len(out)
                _check_total(produced, limits)
                _check_ratio(member.filename, member_bytes, member.compress_size, limits)
    except zlib.error:
        return produced  # corrupt data: the reader answers 422
    return produced


def _check_total(unpacked: int, limits: UploadLimits) -> None:
    if unpacked > limits.max_unpacked_bytes:
        raise too_large(f"工作簿解压后超过 {limits.max_unpacked_bytes} 字节",
                        f"the workbook unpacks to more than {limits.max_unpacked_bytes} bytes",
                        limit=limits.max_unpacked_bytes)


def _check_ratio(name: str, unpacked: int, packed: int, limits: UploadLimits) -> None:
    # tiny members (a few hundred bytes of XML) may compress oddly; a ratio only means something above 1 MiB
    if unpacked > INFLATE_CHUNK and unpacked > limits.max_compression_ratio * max(packed, 1):
        raise too_large(f"{name} 的压缩比超过 {limits.max_compression_ratio:g}（疑似压缩炸弹）",
                        f"{name} inflates more than {limits.max_compression_ratio:g} times its packed size "
                        "(a zip bomb?)", limit=limits.max_compression_ratio)


def limited_rows(rows: Iterable[list], limits: UploadLimits | None, sheet: str = "") -> Iterator[list]:
    """The rows, refusing (413) the one past ``max_rows`` (plus a header and a title row)."""
    if limits is None:
        yield from rows
        return
    allowed = limits.max_rows + 2
    for count, row in enumerate(rows, start=1):
        if count > allowed:
            where = f"工作表 {sheet} " if sheet else ""
            raise too_large(f"{where}超过 {limits.max_rows} 行", f"{'sheet ' + sheet + ' ' if sheet else ''}has more "
                            f"than {limits.max_rows} rows", limit=limits.max_rows)
        yield row
