"""Pure functions: folder layouts, parallel inspection and survey cleaning."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pandas as pd
import pytest

from femo_pipeline import folders, survey


def _png(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (20, 24), dtype=np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.fixture
def kaggle_tree(tmp_path):
    root = tmp_path / "kaggle"
    for i, cls in enumerate(["anger", "happiness", "neutrality", "contempt"]):
        (root / cls).mkdir(parents=True)
        (root / cls / f"{cls}_1.png").write_bytes(_png(i))
    (root / "others").mkdir()
    (root / "others" / "x.png").write_bytes(_png(9))
    (root / "loose.png").write_bytes(_png(10))
    (root / "anger" / ".DS_Store").write_bytes(b"junk")
    return root


def test_kaggle_layout_maps_classes_and_flags_misplaced_files(kaggle_tree):
    entries = {e.rel_path: e for e in folders.scan_folder(kaggle_tree, with_splits=False)}
    assert set(entries) == {"anger/anger_1.png", "happiness/happiness_1.png", "neutrality/neutrality_1.png",
                            "contempt/contempt_1.png", "others/x.png", "loose.png", "anger/.DS_Store"}
    # a hidden file is not read, but it has its outcome row like every entry
    assert entries["anger/.DS_Store"].problem == "hidden file, not read" and not entries["anger/.DS_Store"].openable
    assert entries["happiness/happiness_1.png"].emotion_id == 3
    assert entries["neutrality/neutrality_1.png"].emotion_id == 6
    assert entries["contempt/contempt_1.png"].emotion_id == 7
    assert "no known emotion" in entries["others/x.png"].problem
    assert entries["loose.png"].problem == "file outside any emotion folder"

    table = folders.inspect_folder(kaggle_tree, list(entries.values()), workers=1).to_pandas().set_index("rel_path")
    assert table.loc["anger/anger_1.png", "status"] == "ok"
    assert table.loc["anger/anger_1.png", "content"] == (kaggle_tree / "anger/anger_1.png").read_bytes()
    assert table.loc["others/x.png", "status"] == "quarantined"
    assert table.loc["others/x.png", "content"] is None
    assert table.loc["loose.png", "reason"] == "file outside any emotion folder"


def test_fer_layout_reads_splits_and_usage(tmp_path):
    for split, name in (("train", "Training_1.jpg"), ("test", "PrivateTest_2.jpg")):
        (tmp_path / split / "sad").mkdir(parents=True)
        img = np.full((48, 48), 128, np.uint8)
        (tmp_path / split / "sad" / name).write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    entries = folders.scan_folder(tmp_path, with_splits=True)
    table = folders.inspect_folder(tmp_path, entries, workers=1).to_pandas()
    assert sorted(zip(table["split"], table["usage"], table["emotion_id"])) == [
        ("test", "PrivateTest", 4), ("train", "Training", 4)]


@pytest.mark.parametrize(
    "make,with_splits,message",
    [
        (lambda p: None, True, "does not exist"),
        (lambda p: (p / "images").mkdir(parents=True), True, "no 'train' or 'test' folder"),
        (lambda p: (p / "train").mkdir(parents=True), False, "no emotion folders"),
        (lambda p: (p.parent.mkdir(parents=True, exist_ok=True), p.write_text("x")), False, "not a folder"),
    ],
)
def test_wrong_folders_raise_clear_errors(tmp_path, make, with_splits, message):
    root = tmp_path / "src"
    make(root)
    with pytest.raises(folders.FolderLayoutError, match=message):
        folders.scan_folder(root, with_splits=with_splits)


def test_parallel_inspection_equals_serial(demo_inputs):
    root = demo_inputs / "kaggle"
    entries = folders.scan_folder(root, with_splits=False)
    serial = folders.inspect_folder(root, entries, workers=1)
    parallel = folders.inspect_folder(root, entries, workers=2, chunk_size=17)
    assert parallel.equals(serial)
    assert serial.num_rows == len(entries)


def _csv(rows: list[list[str]]) -> io.StringIO:
    lines = [",".join(survey.COLUMNS)] + [",".join(r) for r in rows]
    return io.StringIO("\n".join(lines) + "\n")


def _row(rid: str, hours: str = "10", day: str = "3", fill: str = "0") -> list[str]:
    return [rid, hours, day] + [fill] * len(survey.EMOTION_COLUMNS)


def test_survey_cleaning_drops_and_explains_bad_rows():
    good = _row("1")
    good[survey.COLUMNS.index("Joy")] = "1"
    rows = [
        good,
        _row("2", hours=""),            # blank
        _row("3", day="Monday"),        # non-numeric
        _row("4", hours="24"),          # out of range
        _row("5", fill="2"),            # emotion not 0/1
        _row("6", hours="7.5"),         # not an integer
        _row("1"),                      # duplicate id
        _row("8", hours=" 23 ", day="7.0"),
    ]
    cleaned = survey.clean_survey(survey.read_survey_csv(_csv(rows)))
    assert list(cleaned.responses["id"]) == [1, 8]
    assert cleaned.responses.loc[0, "Joy"] == 1 and cleaned.responses.loc[1, "Hours"] == 23
    assert dict(zip(cleaned.rejected["id"], cleaned.rejected["reason"])) == {
        "2": "blank cell", "3": "non-numeric cell", "4": "Hours outside 0-23", "5": "emotion value not 0/1",
        "6": "non-integer value", "1": "duplicate id"}
    assert cleaned.stats["rows_read"] == 8 and cleaned.stats["rows_kept"] == 2 and cleaned.stats["rows_dropped"] == 6
    assert cleaned.stats["cells_blank"] == 1 and cleaned.stats["cells_non_numeric"] == 1
    assert list(cleaned.responses.columns) == list(survey.COLUMNS)


def test_survey_with_missing_columns_or_garbage_is_a_clear_error(tmp_path):
    with pytest.raises(survey.SurveyFormatError, match=r"lacks columns \['Anger'\]"):
        survey.read_survey_csv(io.StringIO(",".join(survey.COLUMNS[:-1]) + "\n1,2,3\n"))
    with pytest.raises(survey.SurveyFormatError, match="malformed"):
        survey.read_survey_csv(io.StringIO(""))
    with pytest.raises(survey.SurveyFormatError, match="not found"):
        survey.read_survey_csv(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'id,Hours\n"1,2\n')
    with pytest.raises(survey.SurveyFormatError):
        survey.read_survey_csv(bad)


def test_a_survey_path_that_is_a_fifo_a_device_or_a_folder_is_a_clear_error_not_a_hang(tmp_path):
    import os
    import time

    os.mkfifo(tmp_path / "fifo.csv")
    start = time.monotonic()
    for path, message in ((tmp_path / "fifo.csv", "not a regular file"), ("/dev/zero", "not a regular file"),
                          (tmp_path, "is a folder")):
        with pytest.raises(survey.SurveyFormatError, match=message):
            survey.read_survey_csv(path)
    assert time.monotonic() - start < 2


def test_an_input_file_over_its_limit_is_refused_unread(tmp_path):
    from femo_pipeline.files import InputFileError, read_input_file

    path = tmp_path / "big.csv"
    path.write_bytes(b"x" * 101)
    with pytest.raises(InputFileError, match="more than the limit of 100"):
        read_input_file(path, max_bytes=100)
    assert read_input_file(path, max_bytes=101) == b"x" * 101
    (tmp_path / "link.csv").symlink_to(path)  # a path the user configured may be a link to the file
    assert read_input_file(tmp_path / "link.csv", max_bytes=101) == b"x" * 101


def test_demo_survey_has_schema_and_unusable_cells(demo_inputs):
    raw = pd.read_csv(demo_inputs / "survey.csv", dtype=str, keep_default_na=False)
    assert tuple(raw.columns) == survey.COLUMNS
    cleaned = survey.clean_survey(survey.read_survey_csv(demo_inputs / "survey.csv"))
    assert cleaned.stats["cells_blank"] > 0 and cleaned.stats["cells_non_numeric"] > 0
    assert 0 < cleaned.stats["rows_dropped"] < 0.05 * cleaned.stats["rows_read"]


def _cleaned(rows: list[list[str]]) -> survey.CleanSurvey:
    return survey.clean_survey(survey.read_survey_csv(_csv(rows)))


def test_survey_ids_inf_and_1e30_are_rejected_not_crashing_or_wrapping():
    cleaned = _cleaned([_row("inf"), _row("1e30"), _row("-Infinity"), _row("nan"), _row("7")])
    assert list(cleaned.responses["id"]) == [7]
    assert dict(zip(cleaned.rejected["id"], cleaned.rejected["reason"])) == {
        "inf": "non-numeric cell", "1e30": "non-integer value", "-Infinity": "non-numeric cell",
        "nan": "non-numeric cell"}


def test_survey_ids_are_exact_64_bit_integers_even_beside_a_blank_id():
    big = "9007199254740993"  # 2**53 + 1: a float would make it ...992
    cleaned = _cleaned([_row(""), _row("9007199254740992"), _row(big), _row("9223372036854775807"),
                        _row("9223372036854775808"), _row("-9223372036854775809")])
    assert list(cleaned.responses["id"]) == [9007199254740992, 9007199254740993, 9223372036854775807]
    assert cleaned.responses["id"].dtype == "int64"
    assert dict(zip(cleaned.rejected["id"], cleaned.rejected["reason"])) == {
        "": "blank cell", "9223372036854775808": "id outside the signed 64-bit range",
        "-9223372036854775809": "id outside the signed 64-bit range"}


def test_survey_values_must_be_written_as_integers():
    cleaned = _cleaned([_row("1", hours="1e1"), _row("2", hours="٣"), _row("3", hours="+5"), _row("4", day="7.00"),
                        _row("5", hours="99999999999999999999999")])
    assert list(cleaned.responses["id"]) == [3, 4]
    assert dict(zip(cleaned.rejected["id"], cleaned.rejected["reason"])) == {
        "1": "non-integer value", "2": "non-numeric cell", "5": "Hours outside 0-23"}


def test_survey_duplicate_header_is_an_error_naming_it():
    header = ",".join(survey.COLUMNS) + ",Hours"
    with pytest.raises(survey.SurveyFormatError, match=r"duplicate columns \['Hours'\]"):
        survey.read_survey_csv(io.StringIO(header + "\n" + ",".join(_row("1") + ["5"]) + "\n"))


def test_survey_bytes_not_utf8_reject_only_their_row_and_name_it(tmp_path):
    path = tmp_path / "survey.csv"
    header = ",".join(survey.COLUMNS) + ",Comment"
    lines = [header.encode(), ",".join(_row("1") + ["fine"]).encode(),
             ",".join(_row("2") + ["caf"]).encode() + b"\xe9",  # latin-1 in a column femo does not use
             ",".join(_row("3") + ["ok"]).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    cleaned = survey.clean_survey(survey.read_survey_csv(path))
    assert list(cleaned.responses["id"]) == [1, 3]
    [reason] = cleaned.rejected["reason"]
    assert reason == "row 2, column 'Comment': bytes that are not UTF-8"
    assert list(cleaned.rejected["row_number"]) == [2]


def test_survey_rows_with_a_wrong_number_of_fields_are_rejected_alone():
    text = ",".join(survey.COLUMNS) + "\n" + ",".join(_row("1")) + "\n" + ",".join(_row("2") + ["9"]) + "\n" \
        + ",".join(_row("3")[:-2]) + "\n\n" + ",".join(_row("4")) + "\n"
    cleaned = survey.clean_survey(survey.read_survey_csv(io.StringIO(text)))
    assert list(cleaned.responses["id"]) == [1, 4]
    assert dict(zip(cleaned.rejected["id"], cleaned.rejected["reason"])) == {
        "2": f"22 fields, the header has {len(survey.COLUMNS)}", "3": f"19 fields, the header has {len(survey.COLUMNS)}"}


def test_survey_utf8_bom_and_crlf_are_read(tmp_path):
    path = tmp_path / "survey.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (",".join(survey.COLUMNS) + "\r\n" + ",".join(_row("1")) + "\r\n").encode())
    assert list(survey.clean_survey(survey.read_survey_csv(path)).responses["id"]) == [1]


def test_inspection_streams_parts_to_a_sink(demo_inputs, tmp_path):
    import gc

    import pyarrow as pa

    root = demo_inputs / "kaggle"
    entries = folders.scan_folder(root, with_splits=False)
    whole = folders.inspect_folder(root, entries, workers=1)
    parts: list = []
    spool = tmp_path / "spool"
    spool.mkdir()
    seen_spool: list[list[str]] = []

    def sink(part):  # a part's bytes come through a file in a private folder under spool_dir
        seen_spool.append([p.name for p in spool.iterdir()])
        parts.append(part)

    light = folders.inspect_folder(root, entries, workers=2, chunk_size=50, sink=sink, spool_dir=spool)
    assert len(parts) == -(-len(entries) // 50) and all(p.num_rows <= 50 for p in parts)
    assert pa.concat_tables(parts).equals(whole)
    assert "content" not in light.column_names and light.equals(whole.drop(["content"]))
    assert seen_spool and all(len(names) == 1 and names[0].startswith("femo-inspect-") for names in seen_spool)
    assert list(spool.iterdir()) == []  # every part file and the folder removed
    assert gc.isenabled() and gc.get_freeze_count() == 0  # the scan's pause and the fork's freeze are undone

    def failing(part):
        raise RuntimeError("sink broke")

    with pytest.raises(RuntimeError, match="sink broke"):
        folders.inspect_folder(root, entries, workers=2, chunk_size=50, sink=failing, spool_dir=spool)
    assert list(spool.iterdir()) == []  # nothing left behind by a failed ingest either
    empty = folders.inspect_folder(root, [], sink=parts.append)
    assert empty.num_rows == 0 and "content" not in empty.column_names


def test_survey_cells_of_any_size_reject_their_row_only():
    """A 5,000-digit integer (past Python's int() digit limit) and a 200 KiB cell (past the csv module's field
    limit) each cost one rejected row with the reason; the rows around them are kept."""
    import csv

    huge = "9" * 5000
    limit_before = csv.field_size_limit()
    cleaned = _cleaned([_row("1"), _row(huge), _row("2", hours=huge), _row("3", hours="-" + huge),
                        _row("4", day="x" * 200 * 1024), _row("5")])
    assert list(cleaned.responses["id"]) == [1, 5]
    reasons = dict(zip(cleaned.rejected["row_number"], cleaned.rejected["reason"]))
    assert reasons == {2: "id outside the signed 64-bit range", 3: "Hours outside 0-23", 4: "Hours outside 0-23",
                       5: "non-numeric cell"}
    shown = dict(zip(cleaned.rejected["row_number"], cleaned.rejected["id"]))
    assert shown[2].startswith("9" * 50) and shown[2].endswith("(5000 characters)") and len(shown[2]) < 200
    assert csv.field_size_limit() == limit_before  # the module's limit is put back
