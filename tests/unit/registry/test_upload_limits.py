"""Archive and row limits of ledger uploads: zip bombs refused on declared and on actually inflated bytes."""
from __future__ import annotations

import io
import zipfile

import pytest

from services.registry.imports.limits import UploadLimits, check_archive, limited_rows
from services.registry.imports.tabular import read_sheets
from shared.problems import Problem
from tests.upload_files import SHEET, small_workbook, with_declared_size, xlsx_bomb

HEADER = ["户编号", "姓名", "身份证号"]
ROWS = [["LZ01-000001", "钟大", ""]]
LIMITS = UploadLimits(max_rows=100, max_unpacked_bytes=8 << 20, max_compression_ratio=50)


def _refused(data: bytes, limits: UploadLimits = LIMITS) -> Problem:
    with pytest.raises(Problem) as caught:
        check_archive(io.BytesIO(data), limits)
    return caught.value


def test_a_real_workbook_passes():
    check_archive(io.BytesIO(small_workbook(HEADER, ROWS * 50)), LIMITS)


def test_a_bomb_is_refused_on_the_central_directory_ratio():
    bomb = xlsx_bomb(HEADER, ROWS, padding_bytes=6 << 20)  # under the total, far over the ratio
    assert len(bomb) < 40_000
    problem = _refused(bomb)
    assert problem.status == 413 and "zip bomb" in problem.detail and problem.extra["limit"] == 50


def test_a_bomb_is_refused_on_the_declared_total():
    problem = _refused(xlsx_bomb(HEADER, ROWS, padding_bytes=20 << 20), UploadLimits(max_compression_ratio=10_000,
                                                                                        max_unpacked_bytes=8 << 20))
    assert problem.status == 413 and problem.extra["limit"] == 8 << 20


def test_a_lying_central_directory_is_caught_by_counting_the_inflated_bytes():
    bomb = xlsx_bomb(HEADER, ROWS, padding_bytes=30 << 20)
    packed = zipfile.ZipFile(io.BytesIO(bomb)).getinfo(SHEET).compress_size
    liar = with_declared_size(bomb, SHEET, packed * 20)  # a believable 20:1 and far under the total
    declared = zipfile.ZipFile(io.BytesIO(liar)).getinfo(SHEET)
    assert declared.file_size == packed * 20 < LIMITS.max_unpacked_bytes
    problem = _refused(liar)
    assert problem.status == 413 and problem.extra["limit"] == 50  # the ratio of the bytes really produced
    problem = _refused(liar, UploadLimits(max_compression_ratio=10_000, max_unpacked_bytes=8 << 20))
    assert problem.extra["limit"] == 8 << 20  # and the total of the bytes really produced


def test_rows_past_the_limit_are_refused_while_reading():
    assert len(list(limited_rows(iter([[1]] * 102), LIMITS))) == 102  # header and a title row are free
    with pytest.raises(Problem) as caught:
        list(limited_rows(iter([[1]] * 103), LIMITS))
    assert caught.value.status == 413 and caught.value.extra["limit"] == 100
    csv = ("户编号,姓名\n" + "LZ,钟\n" * 150).encode()
    with pytest.raises(Problem):
        read_sheets(csv, "l.csv", limits=LIMITS)
    with pytest.raises(Problem):
        read_sheets(small_workbook(HEADER, ROWS * 150), "l.xlsx", limits=LIMITS)
    assert len(read_sheets(csv, "l.csv")[0].rows) == 150  # no limits given (the CLI's own files)
