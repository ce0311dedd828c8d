"""FER+ votes for any copy of the FER-2013 image folders, joined by JPEG content hash. Pure module (no Dagster).

FER+ (Microsoft's ``fer2013new.csv``) gives ten crowd votes per *row* of the original ``fer2013.csv``; the popular
Kaggle copies of FER-2013 are JPEG folders (``train|test/<emotion>/<Usage>_<n>.jpg``) with no row numbers. The
package ships ``data/ferplus_map.csv.gz``, a derived table that links JPEG bytes to ``fer2013new.csv`` data rows:

    sha256_prefix   first 12 hex digits of the JPEG file's sha256 (unique among all 34,034 distinct JPEGs of the
                    35,887 files; the builder verifies this)
    usage           Training / PublicTest / PrivateTest
    fer2013new_rows 0-based data row of fer2013new.csv, or several joined by ';' when the image has
                    pixel-identical copies in the same usage (their votes are identical; which row is which cannot
                    be recovered)

Key = (sha256_prefix, usage). The same bytes can occur in several files: inside one usage they always map to the
same row(s); across usages (531 contents occur in Training and in a test usage, 43 in both PublicTest and
PrivateTest) they are different fer2013new.csv rows. Those rows' votes are equal in today's fer2013new.csv, but
nothing guarantees it, so the usage is part of the key and each file keeps its own row.
A file's usage is read from its name (``Training_``, ``PublicTest_``, ``PrivateTest_`` prefixes, as in Kaggle's
layout); a file without such a prefix under a ``train`` folder is Training; under ``test`` it is resolved when only
one of PublicTest/PrivateTest has its hash (or both give identical votes), else it is left out as ambiguous.

The table is derived from ``../shared/datasets/ferplus/ferplus_votes_by_file.csv`` (files matched to FER+ PNGs by
pixels, see that folder's SOURCE.txt) by hashing the JPEGs of ``../shared/datasets/fer2013``; its rows are
cross-checked against ``fer2013_folder_to_ferplus.csv``. Provenance and FER+'s MIT notice:
``data/FERPLUS_NOTICE.txt``. Rebuild with ``python -m femo_pipeline.ferplus_map build``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from femo_pipeline.files import InputFileError, read_input_file
from femo_pipeline.vocab import VOTE_COLUMNS

USAGES = ("Training", "PublicTest", "PrivateTest")
MAP_PATH = Path(__file__).parent / "data" / "ferplus_map.csv.gz"
PREFIX_LEN = 12
FER2013NEW_SHA256 = "9206e20d62f56475939f516847d61753e4860caeac9718b560129541b776fc2c"
FER2013NEW_URL = ("https://raw.githubusercontent.com/microsoft/FERPlus/"
                  "ae2128abf776409c93e50cf7c9d87180673314e6/fer2013new.csv")
FER2013NEW_ROWS = 35887
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class FerplusMapError(ValueError):
    """An input (map, fer2013new.csv, file list) is not what this module expects."""


def sha256_file(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hash_folder(root: str | os.PathLike) -> pd.DataFrame:
    """Every image under root: path (relative, '/'-separated) and sha256 of its bytes, sorted by path."""
    root = Path(root)
    rows = [(p.relative_to(root).as_posix(), sha256_file(p)) for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return pd.DataFrame(rows, columns=["path", "sha256"])


def usage_from_path(path: str) -> str | None:
    """Training/PublicTest/PrivateTest from the file name prefix; 'train' folder -> Training; else None."""
    parts = path.replace("\\", "/").split("/")
    for usage in USAGES:
        if parts[-1].startswith(usage + "_"):
            return usage
    if any(p.lower() == "train" for p in parts[:-1]):
        return "Training"
    return None


def _split_from_path(path: str) -> str | None:
    parts = [p.lower() for p in path.replace("\\", "/").split("/")[:-1]]
    return "test" if "test" in parts else ("train" if "train" in parts else None)


def load_map(path: str | os.PathLike = MAP_PATH) -> pd.DataFrame:
    """The shipped (or a rebuilt) map: sha256_prefix, usage, fer2013new_rows (str)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise FerplusMapError(f"map not found: {path}") from None
    if list(table.columns) != ["sha256_prefix", "usage", "fer2013new_rows"]:
        raise FerplusMapError(f"unexpected map columns {list(table.columns)}")
    if table.duplicated(["sha256_prefix", "usage"]).any():
        raise FerplusMapError("map has duplicate (sha256_prefix, usage) keys")
    return table


def read_fer2013new(source, check_sha256: bool = False) -> pd.DataFrame:
    """Microsoft's fer2013new.csv (path or bytes) as a DataFrame: Usage, Image name, the ten vote columns.

    The index is the 0-based data row (row i = row i of the original fer2013.csv). With check_sha256, the file
    must be byte-identical to the FERPlus copy the map was built with.
    """
    try:
        data = source if isinstance(source, bytes) else read_input_file(source)
    except InputFileError as exc:
        raise FerplusMapError(f"fer2013new.csv {exc}") from None
    if check_sha256 and hashlib.sha256(data).hexdigest() != FER2013NEW_SHA256:
        raise FerplusMapError("fer2013new.csv differs from FERPlus commit ae2128a (sha256 mismatch)")
    try:
        table = pd.read_csv(io.BytesIO(data), dtype={"Image name": str}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FerplusMapError(f"fer2013new.csv is malformed: {exc}") from exc
    missing = [c for c in ("Usage", "Image name", *VOTE_COLUMNS) if c not in table.columns]
    if missing:
        raise FerplusMapError(f"fer2013new.csv lacks columns {missing}")
    if len(table) != FER2013NEW_ROWS:
        raise FerplusMapError(f"fer2013new.csv has {len(table)} data rows, expected {FER2013NEW_ROWS}")
    bad = [c for c in VOTE_COLUMNS
           if not pd.api.types.is_integer_dtype(table[c]) or bool((table[c] < 0).any())]
    if bad:
        raise FerplusMapError(f"fer2013new.csv has vote cells that are not whole numbers 0 or more in columns {bad}")
    return table


def _as_file_table(files) -> pd.DataFrame:
    if isinstance(files, Mapping):
        files = pd.DataFrame({"path": list(files), "sha256": list(files.values())})
    if not {"path", "sha256"} <= set(files.columns):
        raise FerplusMapError("files need columns path and sha256")
    return files[["path", "sha256"]].reset_index(drop=True)


def match_files(files, fer2013new, mapping: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every input file with its FER+ votes, or the reason it has none.

    files: {path: sha256} or a DataFrame with path and sha256 (e.g. :func:`hash_folder`); fer2013new: a path, bytes
    or the DataFrame of :func:`read_fer2013new`; mapping: :func:`load_map` (default: the shipped table).
    Returns path, usage, sha256, status ('matched', 'not_in_map', 'ambiguous_usage', 'conflicting_rows'),
    fer2013_rows ('r' or 'r1;r2'), and the ten vote columns (nullable Int64, empty unless matched).
    """
    files = _as_file_table(files)
    new = fer2013new if isinstance(fer2013new, pd.DataFrame) else read_fer2013new(fer2013new)
    mapping = load_map() if mapping is None else mapping
    prefix_len = int(mapping["sha256_prefix"].str.len().max()) if len(mapping) else PREFIX_LEN
    by_key = {(p, u): r for p, u, r in mapping[["sha256_prefix", "usage", "fer2013new_rows"]].itertuples(index=False)}
    usages_of = mapping.groupby("sha256_prefix")["usage"].agg(list).to_dict()
    votes_matrix = new[list(VOTE_COLUMNS)].to_numpy()

    def votes_of(rows: str) -> np.ndarray | None:
        idx = [int(r) for r in rows.split(";")]
        v = votes_matrix[idx]
        return v[0] if (v == v[0]).all() else None

    out = []
    for path, sha in files.itertuples(index=False):
        prefix = sha.lower()[:prefix_len]
        usage = usage_from_path(path)
        rows, status = None, "matched"
        if usage is not None:
            rows = by_key.get((prefix, usage))
        else:  # no usage in the name and not under train/: the test usages (or any, outside a test/ folder)
            allowed = ("PublicTest", "PrivateTest") if _split_from_path(path) == "test" else USAGES
            options = [(u, by_key[(prefix, u)]) for u in usages_of.get(prefix, []) if u in allowed]
            found = [votes_of(r) for _, r in options]
            if len(options) == 1 or (options and all(v is not None and (v == found[0]).all() for v in found)):
                usage, rows = options[0]  # one candidate, or several with identical votes: the first
            elif options:
                status = "ambiguous_usage"
        vote = None
        if rows is None and status == "matched":
            status = "not_in_map"
        elif rows is not None:
            vote = votes_of(rows)
            if vote is None:
                status = "conflicting_rows"
        out.append((path, usage, sha, status, rows if status == "matched" else None,
                    *(vote if status == "matched" else [None] * len(VOTE_COLUMNS))))
    table = pd.DataFrame(out, columns=["path", "usage", "sha256", "status", "fer2013_rows", *VOTE_COLUMNS])
    for c in VOTE_COLUMNS:
        table[c] = table[c].astype("Int64")
    return table


def votes_by_file(files, fer2013new, mapping: pd.DataFrame | None = None) -> pd.DataFrame:
    """The matched files only: path, usage, sha256, fer2013_rows and the ten vote counts (int)."""
    table = match_files(files, fer2013new, mapping)
    table = table[table["status"] == "matched"].drop(columns="status").reset_index(drop=True)
    return table.astype({c: np.int64 for c in VOTE_COLUMNS})


# ---------------------------------------------------------------- builder (run once, output shipped in the package)

def build_map(fer2013_root: str | os.PathLike, votes_csv: str | os.PathLike, folder_map_csv: str | os.PathLike,
              fer2013new_csv: str | os.PathLike, out: str | os.PathLike = MAP_PATH,
              prefix_len: int = PREFIX_LEN) -> dict:
    """Hash the JPEGs, key ferplus_votes_by_file.csv's rows by (sha256 prefix, usage), verify, write the map.

    Verified before writing (FerplusMapError otherwise): the prefix is unique among all distinct hashes; files with
    the same (hash, usage) have the same rows; single rows agree with fer2013_folder_to_ferplus.csv wherever that
    table calls the file 'unique'; joining the map with fer2013new.csv reproduces the votes table exactly.
    Returns a summary dict.
    """
    hashes = hash_folder(fer2013_root)
    votes = pd.read_csv(votes_csv, dtype={"fer2013_rows": str})
    folder = pd.read_csv(folder_map_csv)
    new = read_fer2013new(fer2013new_csv, check_sha256=True)
    distinct = hashes["sha256"].drop_duplicates()
    if distinct.str[:prefix_len].nunique() != len(distinct):
        raise FerplusMapError(f"a {prefix_len}-digit sha256 prefix is not unique; use a longer one")
    hashes["usage"] = hashes["path"].map(usage_from_path)
    joined = votes.merge(hashes, on="path", how="left", suffixes=("", "_file"))
    if joined["sha256"].isna().any():
        raise FerplusMapError(f"{int(joined['sha256'].isna().sum())} voted files are missing under {fer2013_root}")
    if (joined["usage"] != joined["usage_file"]).any():
        raise FerplusMapError("usage column disagrees with the file-name prefix")
    joined["sha256_prefix"] = joined["sha256"].str[:prefix_len]
    keyed = joined.groupby(["sha256_prefix", "usage"])["fer2013_rows"].agg(lambda s: sorted(set(s)))
    if (keyed.map(len) > 1).any():
        raise FerplusMapError("byte-identical files of one usage have different FER+ rows")
    # a byte-identical copy of a voted file that the votes table left out would get votes from the map
    unvoted = hashes[~hashes["path"].isin(votes["path"])]
    clash = set(zip(unvoted["sha256"].str[:prefix_len], unvoted["usage"])) & set(keyed.index)
    if clash:
        raise FerplusMapError(f"{len(clash)} files without votes share bytes and usage with voted files")
    table = keyed.map(lambda rows: rows[0]).rename("fer2013new_rows").reset_index()
    table["_first"] = table["fer2013new_rows"].str.split(";").str[0].astype(int)
    table = table.sort_values(["_first", "usage", "sha256_prefix"]).drop(columns="_first")
    # cross-check with the independent first matching run
    unique = folder[folder["status"] == "unique"][["fer2013_path", "fer2013new_row"]]
    both = joined.merge(unique, left_on="path", right_on="fer2013_path")
    single = both[~both["fer2013_rows"].str.contains(";")]
    disagree = int((single["fer2013_rows"].astype(int) != single["fer2013new_row"].astype(int)).sum())
    if disagree:
        raise FerplusMapError(f"{disagree} files have a different row in fer2013_folder_to_ferplus.csv")
    # the join must reproduce the votes table exactly
    again = votes_by_file(hashes[["path", "sha256"]], new, table.reset_index(drop=True))
    _assert_same_votes(again, votes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = table.to_csv(index=False).encode()
    with open(out, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
        gz.write(buffer)  # mtime=0, no name: the same input gives the same bytes
    return {"files_hashed": len(hashes), "distinct_hashes": len(distinct), "voted_files": len(votes),
            "map_rows": len(table), "multi_row_entries": int(table["fer2013new_rows"].str.contains(";").sum()),
            "cross_checked_unique_files": len(single), "bytes": out.stat().st_size, "path": str(out)}


def _assert_same_votes(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same files, same rows, same vote counts (FerplusMapError with the first differences otherwise)."""
    a = got.set_index("path").sort_index()
    b = expected.set_index("path").sort_index()
    if list(a.index) != list(b.index):
        extra, lost = sorted(set(a.index) - set(b.index)), sorted(set(b.index) - set(a.index))
        raise FerplusMapError(f"files differ: {len(extra)} extra (e.g. {extra[:3]}), {len(lost)} missing "
                              f"(e.g. {lost[:3]})")
    cols = list(VOTE_COLUMNS)
    bad = (a[cols].to_numpy() != b[cols].to_numpy()).any(axis=1)
    bad |= a["fer2013_rows"].astype(str).to_numpy() != b["fer2013_rows"].astype(str).to_numpy()
    if bad.any():
        raise FerplusMapError(f"{int(bad.sum())} files differ in votes or rows, e.g. {list(a.index[bad][:3])}")


def main(argv: list[str] | None = None) -> int:
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    parser = argparse.ArgumentParser(prog="python -m femo_pipeline.ferplus_map", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="rebuild the shipped map from ../shared (verifies it, see build_map)")
    b.add_argument("--fer2013", default=shared / "fer2013")
    b.add_argument("--ferplus", default=shared / "ferplus", help="folder with the FER+ files of SOURCE.txt")
    b.add_argument("--out", default=MAP_PATH)
    v = sub.add_parser("votes", help="write FER+ votes per file for a FER-2013 folder copy")
    v.add_argument("fer2013", help="folder holding train/ and test/")
    v.add_argument("fer2013new", help="Microsoft's fer2013new.csv")
    v.add_argument("--out", default="-", help="CSV path ('-' for stdout)")
    args = parser.parse_args(argv)
    if args.command == "build":
        ferplus = Path(args.ferplus)
        summary = build_map(args.fer2013, ferplus / "ferplus_votes_by_file.csv",
                            ferplus / "fer2013_folder_to_ferplus.csv", ferplus / "fer2013new.csv", args.out)
        for key, value in summary.items():
            print(f"{key}: {value}")
        return 0
    table = match_files(hash_folder(args.fer2013), args.fer2013new)
    print(table["status"].value_counts().to_string(), file=sys.stderr)
    matched = table[table["status"] == "matched"].drop(columns="status")
    matched.to_csv(sys.stdout if args.out == "-" else args.out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
