import io
import zipfile

import pytest
from django.utils import translation

from lookups.lab_files import LabFileRejected, read_lab_file

LIMITS = {"max_bytes": 2 * 1024 * 1024, "max_rows": 5000}
EN = "id_number,test_kind,sampled_at,site,lab,result,reported_at\n"
ZH = "身份证号,检测类型,采样时间,采样点,检测机构,结果,报告时间\n"


@pytest.fixture(autouse=True)
def _english():
    """The messages are matched in English, whatever an earlier test left active."""
    with translation.override("en"):
        yield


ROW = "110101194001011234,pcr,2026-01-05 09:30,社区站,金域检验,negative,2026-01-05 18:00\n"


def test_utf8_and_bom():
    for data in ((EN + ROW).encode(), b"\xef\xbb\xbf" + (EN + ROW).encode()):
        got = read_lab_file(data, **LIMITS)
        assert got.rows[0][1]["site"] == "社区站"
        assert got.rows[0][0] == 2


def test_gb18030_chinese_header_and_names():
    got = read_lab_file((ZH + ROW).encode("gb18030"), **LIMITS)
    assert got.rows[0][1]["lab"] == "金域检验"


def test_mixed_header_languages():
    header = "id_number,检测类型,sampled_at,采样点,lab,结果,reported_at\n"
    assert read_lab_file((header + ROW).encode(), **LIMITS).rows[0][1]["result"] == "negative"


def test_bad_encoding_names_line():
    data = (EN + ROW).encode() + b"\xff\xff\xff\n"
    with pytest.raises(LabFileRejected, match="line 3"):
        read_lab_file(data, **LIMITS)


def test_too_many_rows():
    with pytest.raises(LabFileRejected, match="more than 2"):
        read_lab_file((EN + ROW * 3).encode(), max_bytes=LIMITS["max_bytes"], max_rows=2)


def _xlsx(rows):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_xlsx_and_formula_not_evaluated():
    head = EN.strip().split(",")
    cells = ROW.strip().split(",")
    formula = cells[:5] + ["=1+1", cells[6]]
    got = read_lab_file(_xlsx([head, cells, formula]), **LIMITS)
    assert got.format == "xlsx"
    assert got.rows[0][1]["lab"] == "金域检验"
    assert got.rows[1][1]["result"] == ""
    assert [(p.line, p.column) for p in got.problems] == [(3, "result")]


def test_zip_bomb_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/worksheets/sheet1.xml", b"\0" * (300 * 1024 * 1024))
    with pytest.raises(LabFileRejected, match="expands|damaged"):
        read_lab_file(out.getvalue(), **LIMITS)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04junk", b"\x00\x01", EN.encode()])
def test_bad_input_rejected_cleanly(data):
    with pytest.raises(LabFileRejected):
        read_lab_file(data, **LIMITS)


def test_zip_bomb_with_lying_sizes_refused():
    """The central directory and local header claim 1 KB; the member really expands to 60 MB.
    Refused before openpyxl, as damaged (its CRC cannot match) or as too large."""
    import struct

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", b"<Types/>")
        zf.writestr("xl/sharedStrings.xml", b"A" * (60 * 1024 * 1024))
    data = bytearray(out.getvalue())
    real = 60 * 1024 * 1024
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            if struct.unpack_from("<I", data, start + offset)[0] == real:
                struct.pack_into("<I", data, start + offset, 1024)
            start += 4
    with pytest.raises(LabFileRejected, match="expands|damaged"):
        read_lab_file(bytes(data), **LIMITS)
