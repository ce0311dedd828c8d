"""`femo sql` (formats, limits, files, several statements, refused writes) and `femo report`."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import pytest

from femo_pipeline import cli, warehouse


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FEMO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    path = tmp_path / "warehouse" / "femo.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        warehouse.ensure_schema(con)
        warehouse.upsert_data_sources(con, {"fer2013"})
        warehouse.upsert_emotions(con)
        for k in range(120):
            con.execute("INSERT INTO images VALUES (?, 4, ?, 'train', 'Training', ?, NULL, 48, 48, 1.0, 'PNG', "
                        "'Grayscale', 1, 10, ?, 1, FALSE, FALSE, TRUE)", [k, k % 7, f"t/{k}.png", f"h{k}"])
            con.execute("INSERT INTO image_pixels VALUES (?, ?)", [k, b"\x89PNG" + bytes(k)])
    return tmp_path


def sql(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["sql", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_default_limit_and_no_limit(data_dir, capsys):
    code, out, _ = sql(capsys, "SELECT id, rel_path FROM images ORDER BY id")
    assert code == 0 and "t/49.png" in out and "t/50.png" not in out
    assert "(50 rows, more not shown (--limit 0 for all))" in out
    code, out, _ = sql(capsys, "SELECT id FROM images", "--limit", "0")
    assert code == 0 and "(120 rows)" in out
    code, out, _ = sql(capsys, "SELECT id FROM images ORDER BY id", "--limit", "3")
    assert "(3 rows, more not shown" in out
    code, out, _ = sql(capsys, "SELECT image_id, pixels FROM image_pixels WHERE image_id = 7")
    assert "<11 bytes>" in out  # BLOBs as their size, not raw bytes


def test_csv_and_json(data_dir, capsys):
    code, out, _ = sql(capsys, "SELECT id, emotion_id, NULL AS nothing FROM images ORDER BY id", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert code == 0 and rows[0] == ["id", "emotion_id", "nothing"] and len(rows) == 121  # csv: all rows
    assert rows[8] == ["7", "0", ""]
    code, out, _ = sql(capsys, "SELECT i.id, e.emotion, current_date AS d FROM images i JOIN emotions e "
                                "ON e.id = i.emotion_id ORDER BY i.id LIMIT 2", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data[1]["emotion"] == "Disgust" and len(data[0]["d"]) == 10


def test_several_statements_each_shown_and_file(data_dir, capsys, tmp_path):
    script = tmp_path / "q.sql"
    script.write_text("-- two queries\nSELECT count(*) AS n_images FROM images;\n"
                      "SELECT emotion FROM emotions WHERE id = 3;\nSELECT 'a;b' AS text;\n")
    code, out, _ = sql(capsys, "-f", str(script))
    assert code == 0 and "statement 1 of 3" in out and "statement 3 of 3" in out
    assert "120" in out and "Happiness" in out and "a;b" in out
    code, out, _ = sql(capsys, "-f", str(script), "--format", "json")
    docs = [json.loads(part) for part in out.strip().split("\n\n")]
    assert docs == [[{"n_images": 120}], [{"emotion": "Happiness"}], [{"text": "a;b"}]]


@pytest.mark.parametrize("statement", ["DELETE FROM images", "CREATE TABLE t (a INT)", "DROP TABLE emotions",
                                       "SELECT 1; UPDATE emotions SET emotion = 'x'"])
def test_writes_are_refused_with_a_clear_message(data_dir, capsys, statement):
    code, _, err = sql(capsys, statement)
    assert code == 3 and "read-only" in err and "refused" in err and "Traceback" not in err
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM images").fetchone()[0] == 120
        assert con.execute("SELECT emotion FROM emotions WHERE id = 0").fetchone()[0] == "Anger"


def test_errors_and_usage(data_dir, capsys, tmp_path):
    code, _, err = sql(capsys, "SELECT nope FROM images")
    assert code == 1 and "statement 1" in err and "nope" in err
    code, _, err = sql(capsys, "-f", str(tmp_path / "missing.sql"))
    assert code == 2 and "cannot read" in err
    with pytest.raises(SystemExit):
        cli.main(["sql"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["sql", "SELECT 1", "--format", "xml"])


def test_report_prints_its_path(data_dir, capsys):
    assert cli.main(["report"]) == 2
    assert "no report yet" in capsys.readouterr().err
    reports = data_dir / "reports"
    reports.mkdir()
    (reports / "benchmark.md").write_text("# report\n")
    (reports / "benchmark.html").write_text("<p>report</p>")
    assert cli.main(["report"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [str(reports / "benchmark.md"), str(reports / "benchmark.html")]
