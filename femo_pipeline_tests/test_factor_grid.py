"""The data-factor grid: cells and their keys, label noise, the rows a cell trains on, and the curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from femo_pipeline import factor_grid as grid
from femo_pipeline.human_baseline import VOTE_COLUMNS


def test_every_cell_has_one_key_that_parses_back():
    keys = [c.key for c in grid.GRID]
    assert len(keys) == len(set(keys)) == len(grid.GRID)
    assert all(grid.Cell.parse(k) == c for k, c in zip(keys, grid.GRID))
    assert sorted(grid.ORDER) == sorted(grid.GRID)  # the run order holds every cell once
    # the cells that answer the question come first: 4 sizes x 2 label sources x 2 seeds, noise, duplicates
    first = grid.ORDER[:16]
    assert {(c.labels, c.share, c.seed) for c in first} == {(lab, s, seed) for lab in ("fer2013", "ferplus")
                                                            for s in grid.SHARES for seed in (0, 1)}
    assert {c.noise for c in grid.ORDER[16:19]} == {10, 20, 40}
    assert {c.key for c in grid.cells(["ferplus-s025-n00-kept-seed2"])} == {"ferplus-s025-n00-kept-seed2"}
    for bad in ("fer2013-s033-n00-kept-seed0", "nonsense", "ferplus_votes-s100-n10-kept-seed0",
                "fer2013-s100-n00-kept-seed7", "fer2013-s010-n10-kept-seed0"):
        with pytest.raises(ValueError):
            grid.cells([bad])
    assert grid.Cell("fer2013", 100, 20).curves == ["noise"]
    assert grid.Cell("ferplus", 100).curves == ["size", "noise", "duplicates"]
    assert grid.Cell("ferplus", 100, 0, "removed").curves == ["duplicates"]


def test_label_noise_replaces_exactly_the_share_asked_for_with_other_classes():
    labels = np.arange(1000) % 7
    noisy, idx = grid.noisy_labels(labels, 0.2, seed=5)
    assert len(idx) == 200 and (noisy != labels).sum() == 200 and (noisy[idx] != labels[idx]).all()
    assert np.array_equal(np.flatnonzero(noisy != labels), idx)
    assert noisy.min() >= 0 and noisy.max() <= 6
    again, idx2 = grid.noisy_labels(labels, 0.2, seed=5)
    assert np.array_equal(again, noisy) and np.array_equal(idx, idx2)  # seeded
    other, _ = grid.noisy_labels(labels, 0.2, seed=6)
    assert not np.array_equal(other, noisy)
    # every wrong class is drawn: the replacement is uniform over the other six
    big, where = grid.noisy_labels(np.zeros(60000, int), 0.5, seed=1)
    counts = np.bincount(big[where], minlength=7)
    assert counts[0] == 0 and (np.abs(counts[1:] / counts[1:].sum() - 1 / 6) < 0.01).all()
    assert len(grid.noisy_labels(labels, 0.0, 1)[1]) == 0


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"id": np.arange(n), "emotion_id": rng.integers(0, 7, n),
                          "content_hash": [f"h{i}" for i in range(n)], "duplicate_count": 1,
                          "duplicate_cross_split": False, "duplicate_label_conflict": False})
    frame.loc[:39, "duplicate_count"] = 2  # 40 images with a byte copy
    frame.loc[40:49, "duplicate_cross_split"] = True
    votes = rng.integers(0, 4, (n, len(VOTE_COLUMNS)))
    votes[:20] = 0  # nobody voted an emotion for these
    frame[list(VOTE_COLUMNS)] = votes
    return frame


def test_a_cells_rows_share_images_across_label_sources_and_drop_duplicates():
    frame = _frame()
    rows_fer, y_fer = grid.training_rows(frame, grid.Cell("fer2013", 25))
    rows_plus, y_plus = grid.training_rows(frame, grid.Cell("ferplus", 25))
    assert len(rows_fer) == 100 and set(rows_plus) <= set(rows_fer)  # the same draw, less the unvoted images
    assert (frame.loc[rows_plus, list(VOTE_COLUMNS)].to_numpy()[:, :7].sum(axis=1) > 0).all()
    assert np.array_equal(y_fer, frame["emotion_id"].to_numpy()[rows_fer])
    rows_votes, soft = grid.training_rows(frame, grid.Cell("ferplus_votes", 25))
    assert np.array_equal(rows_votes, rows_plus) and soft.shape == (len(rows_plus), 7)
    assert np.array_equal(soft.argmax(axis=1), y_plus)
    other_seed, _ = grid.training_rows(frame, grid.Cell("fer2013", 25, seed=1))
    assert set(other_seed) != set(rows_fer)
    clean, _ = grid.training_rows(frame, grid.Cell("fer2013", 100, 0, "removed"))
    assert len(clean) == 350 and not set(clean) & set(range(50))
    noisy_rows, noisy = grid.training_rows(frame, grid.Cell("fer2013", 100, 40))
    assert np.array_equal(noisy_rows, np.arange(400))
    assert (noisy != frame["emotion_id"].to_numpy()).sum() == 160


def test_epochs_scale_with_the_share_and_duplicates_removed_train_as_many_steps():
    full = grid.epochs_for(grid.Cell("fer2013", 100), 28709)
    tenth = grid.epochs_for(grid.Cell("fer2013", 10), 2871)
    assert full == grid.EPOCHS_AT_FULL and full < tenth <= grid.MAX_EPOCHS
    removed = grid.epochs_for(grid.Cell("fer2013", 100, 0, "removed"), 26000, n_rows_kept=28709)
    assert abs(removed * 26000 - full * 28709) <= 26000  # the same images seen, to one epoch
    assert grid.batch_for(25000) == 256 and grid.batch_for(2500) == 64 and grid.batch_for(10) == 64
    config = grid.train_config(grid.Cell("ferplus_votes", 50), 14000)
    assert config.targets == "votes" and config.width == 32 and config.block_convs == (1, 2, 2, 2)
    assert config.patience > 0 and config.seed == 2013


def _record(cell: grid.Cell, value: float) -> dict:
    return {"cell": cell.key, "scores": [{"reference": r, "metric": m, "value": value, "ci_low": value - .01,
                                          "ci_high": value + .01, "test_images": 10}
                                         for r in ("ferplus", "fer2013") for m in ("accuracy", "balanced_recall")]}


def test_the_curves_aggregate_the_cells_that_exist_and_name_the_missing():
    records = [_record(grid.Cell("fer2013", 10, seed=0), 0.50), _record(grid.Cell("fer2013", 10, seed=1), 0.54),
               _record(grid.Cell("fer2013", 100, seed=0), 0.66), _record(grid.Cell("fer2013", 100, 40), 0.55)]
    curves, missing = grid.aggregate(records)
    assert len(missing) == len(grid.GRID) - 4 and "fer2013-s010-n00-kept-seed2" in missing
    size = curves[(curves["curve"] == "size") & (curves["reference"] == "ferplus") & (curves["metric"] == "accuracy")]
    ten = size[size["x"] == 10].iloc[0]
    assert ten["n"] == 2 and abs(ten["mean"] - 0.52) < 1e-9 and abs(ten["sd"] - np.std([.50, .54], ddof=1)) < 1e-9
    assert ten["min"] == 0.50 and ten["max"] == 0.54
    hundred = size[size["x"] == 100].iloc[0]
    assert hundred["n"] == 1 and np.isnan(hundred["sd"])
    noise = curves[(curves["curve"] == "noise") & (curves["reference"] == "ferplus") & (curves["metric"] == "accuracy")]
    assert noise.set_index("x")["mean"].to_dict() == {0: 0.66, 40: 0.55}  # the 100 % cell is the noise curve's 0
    only, missing_of_few = grid.aggregate(records, expected=[grid.Cell("fer2013", 10), grid.Cell("ferplus", 10)])
    assert missing_of_few == ["ferplus-s010-n00-kept-seed0"]
    empty, all_missing = grid.aggregate([])
    assert empty.empty and len(all_missing) == len(grid.GRID)


def test_recorded_predictions_map_back_onto_any_copy_of_the_faces():
    frame = pd.DataFrame({"content_hash": ["c", "a", "b", "a", "d"]})
    pred = np.array([5, 1, 2, 1, 0])
    recorded = grid.by_content(frame, pred)
    assert recorded == [1, 2, 5, 0]  # a, b, c, d
    shuffled = frame.iloc[[4, 3, 2, 1, 0]].reset_index(drop=True)
    assert grid.from_content(shuffled, recorded).tolist() == [0, 1, 2, 1, 5]
    probs = np.eye(7)[pred]
    rows = grid.by_content_rows(frame, probs)
    assert rows.shape == (4, 7) and np.array_equal(grid.from_content(frame, rows), probs)
    with pytest.raises(ValueError, match="another set"):
        grid.from_content(frame.iloc[:2], recorded)


def test_the_cell_list_marks_cells_measured_here_and_cells_with_a_committed_record(tmp_path, monkeypatch, capsys):
    """`femo factors` with no cell: every cell once, most informative first, the committed records marked."""
    from femo_pipeline import factors_cli
    from femo_pipeline.defs.model.factors import MEASURED

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert factors_cli.run_factors([], prepare=lambda profile: home) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line[9:]: line[:9].strip() for line in lines[:-1]}
    assert list(listed) == [c.key for c in grid.ORDER]
    recorded = {p.stem for p in MEASURED.glob("*.json")}
    assert {k for k, mark in listed.items() if mark == "recorded"} == recorded
    assert not {mark for mark in listed.values()} - {"", "recorded"}
    assert lines[-1].startswith(f"0 of {len(grid.GRID)} cells measured in this instance; {len(recorded)} recorded")


def test_each_committed_cell_becomes_benchmark_records_naming_its_device():
    from bench.grid import cell_records, records
    from femo_pipeline.defs.model.factors import MEASURED

    recs = records(MEASURED)
    out = cell_records(recs)
    assert len(out) == sum(len(r["scores"]) for r in recs) == len({r["name"] for r in out})
    for r in out:
        assert r["ci_low"] <= r["value"] <= r["ci_high"] and r["unit"] == "fraction"
        if r["device"].endswith("(GPU)"):  # the accelerator named is one the machine had
            assert r["device"].removesuffix(" (GPU)") in r["machine"]
        else:
            assert r["device"].endswith("(CPU)") and " x NVIDIA" not in r["machine"]
        assert r["name"].startswith("factor_cell_") and r["date"] and r["machine"]


@pytest.mark.parametrize("bad", [["next", "abc"], ["next", "-5"], ["next", "0"], ["next", "2", "3"], ["next", "\u00b2"]])
def test_next_n_takes_one_positive_whole_number_and_trains_nothing_otherwise(tmp_path, monkeypatch, capsys, bad):
    from femo_pipeline import factors_cli

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert factors_cli.run_factors(bad, prepare=lambda profile: home) == 2
    out = capsys.readouterr().out
    assert "'next N' takes one whole number" in out and "cell 1 of" not in out


def test_a_record_file_is_taken_only_when_it_is_a_record_of_its_own_cell(tmp_path):
    import json

    from femo_pipeline.defs.model.factors import find_record

    key, other = grid.GRID[0].key, grid.GRID[1].key
    good = {"cell": key, "training_fingerprint": "t", "test_fingerprint": "v", "train_images": 10, "epochs": 2,
            "epochs_run": 2, "train_seconds": 1.5,
            "scores": [{"reference": "ferplus", "metric": "accuracy", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6,
                        "test_images": 9}]}
    path = tmp_path / f"{key}.json"
    said: list[str] = []
    for bad, reason in (([1, 2], "a JSON list"), (None, "a JSON NoneType"),
                        ({**good, "cell": other}, f"names cell '{other}'"),
                        ({k: v for k, v in good.items() if k != "scores"}, "scores are not a list"),
                        ({**good, "scores": "abc"}, "scores are not a list"), ({**good, "epochs": "3"}, "not all numbers")):
        path.write_text(json.dumps(bad))
        assert find_record([tmp_path], key, "t", "v", said.append) is None
        assert reason in said[-1], (reason, said[-1])
    path.write_text("{not json")
    assert find_record([tmp_path], key, "t", "v", said.append) is None and "not readable JSON" in said[-1]
    path.unlink()
    path.mkdir()
    assert find_record([tmp_path], key, "t", "v", said.append) is None and "is a folder" in said[-1]
    path.rmdir()
    path.write_text(json.dumps(good))
    assert find_record([tmp_path], key, "t", "v", said.append) == good
    assert find_record([tmp_path], key, "t", "other test images") is None  # measured on other images


@pytest.mark.parametrize("text, why", [("{not json", "not readable JSON"), ("[1, 2]", "a JSON list"),
                                       ("{}", "lacks ['w', 'tau', 'prior', 'rule']")])
def test_a_damaged_package_file_says_which_and_how_to_restore_it(tmp_path, monkeypatch, text, why):
    from femo_pipeline.model import shipped

    fake = tmp_path / "femo_pipeline" / "shipped"
    fake.mkdir(parents=True)
    (fake / "declared.json").write_text(text)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", fake)
    monkeypatch.setattr(shipped, "DECLARED", fake / "declared.json")
    with pytest.raises(shipped.ShippedFileError, match="shipped/declared.json is damaged") as raised:
        shipped.declared_mix()
    assert why in str(raised.value) and "git checkout -- femo_pipeline/shipped/declared.json" in str(raised.value)
