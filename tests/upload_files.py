"""Hostile uploads for the limit tests: XLSX zip bombs, honest and lying."""
from __future__ import annotations

import io
import struct
import zipfile

from openpyxl import Workbook

SHEET = "xl/worksheets/sheet1.xml"


def small_workbook(header: list[str], rows: list[list]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsx_bomb(header: list[str], rows: list[list], padding_bytes: int) -> bytes:
    """A valid workbook whose sheet XML carries ``padding_bytes`` of whitespace before </sheetData>
    (legal XML, ~1000:1 under deflate): small to send, huge to unpack."""
    source = zipfile.ZipFile(io.BytesIO(small_workbook(header, rows)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename != SHEET:
                target.writestr(info.filename, data)
                continue
            before, after = data.split(b"</sheetData>")
            with target.open(SHEET, "w") as stream:
                stream.write(before)
                block = b" " * (1 << 20)
                left = padding_bytes
                while left > 0:
                    stream.write(block[:left])
                    left -= len(block)
                stream.write(b"</sheetData>" + after)
    return out.getvalue()


def with_declared_size(archive: bytes, member: str, declared: int) -> bytes:
    """The same archive with ``member``'s uncompressed size rewritten (central directory and local
    header): a lying header that claims a modest size for a member that inflates to much more."""
    data = bytearray(archive)
    info = zipfile.ZipFile(io.BytesIO(archive)).getinfo(member)
    struct.pack_into("<I", data, info.header_offset + 22, declared)
    name = member.encode()
    position = 0
    while (position := data.find(b"PK\x01\x02", position)) != -1:
        name_length = struct.unpack_from("<H", data, position + 28)[0]
        if bytes(data[position + 46:position + 46 + name_length]) == name:
            struct.pack_into("<I", data, position + 24, declared)
            break
        position += 4
    else:
        raise AssertionError(f"{member} not in the central directory")
    return bytes(data)
