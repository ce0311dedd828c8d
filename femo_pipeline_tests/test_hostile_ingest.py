"""A hostile corpus against the folder ingest: odd names, links out of the root, loops, FIFOs, sockets, corrupt
and tiny images, unreadable folders, mixed with valid files, in both folder layouts.

Goals checked: no crash, no hang (timeouts), nothing outside the source root opened or described, every entry of
the tree has an outcome row, every valid file stored with its bytes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import sys
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from femo_pipeline import folders, imaging
from femo_pipeline_tests.conftest import materialize, staged_file

SECRET = b"root:x:0:0:this is the outside secret, never to be read:/root:/bin/bash\n"
UNDECODABLE = b"caf\xe9_\xff.jpg"
UNDECODABLE_SHOWN = "caf\\xe9_\\xff.jpg"


def face(seed: int, ext: str = ".jpg", size: int = 48) -> bytes:
    img = cv2.GaussianBlur(np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8), (5, 5), 0)
    return cv2.imencode(ext, img)[1].tobytes()


def corrupt_jpeg() -> bytes:
    """A JPEG with part of its entropy-coded data cut out: libjpeg says 'premature end of data segment'."""
    data = face(99, size=96)
    mid = (data.index(b"\xff\xda") + len(data)) // 2
    return data[:mid] + data[mid + 100 :]


def garbled_jpeg() -> bytes:
    """A JPEG with random bytes written over its middle (libjpeg: extraneous bytes before marker)."""
    data = face(98, size=96)
    mid = (data.index(b"\xff\xda") + len(data)) // 2
    junk = bytes(np.random.default_rng(0).integers(0, 255, 64, dtype=np.uint8))
    return data[:mid] + junk + data[mid + 64 :]


def where(path, dir_fd: int | None = None) -> str:
    """The real path of what the walk lists or opens: a path, a folder descriptor, or a name under dir_fd."""
    if isinstance(path, int):
        return os.readlink(f"/proc/self/fd/{path}")
    path = os.fsdecode(path)
    if dir_fd is not None and not os.path.isabs(path):
        path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    return os.path.realpath(path)


def _mkfifo(path: Path) -> None:
    os.mkfifo(path)


def _mksocket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


class Corpus:
    """A hostile source tree with what each entry's outcome must be."""

    def __init__(self, tmp: Path, with_splits: bool):
        self.root = tmp / "source"
        self.outside = tmp / "outside"
        self.with_splits = with_splits
        self.ok: dict[str, bytes] = {}          # rel_path -> bytes that must be stored
        self.quarantined: dict[str, str] = {}   # rel_path -> start of the reason
        self.outside_rel: set[str] = set()      # entries whose target is outside the root
        self.sockets: list[socket.socket] = []
        self._build()

    def _emotion_dir(self, name: str, split: str = "train") -> tuple[Path, str]:
        rel = f"{split}/{name}" if self.with_splits else name
        path = self.root / rel
        path.mkdir(parents=True, exist_ok=True)
        return path, rel

    def _ok(self, folder: Path, rel: str, name: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        self.ok[f"{rel}/{name}"] = data

    def _build(self) -> None:
        self.outside.mkdir(parents=True)
        (self.outside / "secret.txt").write_bytes(SECRET)
        (self.outside / "outside_face.jpg").write_bytes(face(500))
        (self.outside / "folder").mkdir()
        (self.outside / "folder" / "outside_in_folder.jpg").write_bytes(face(501))

        happy, happy_rel = self._emotion_dir("happy" if self.with_splits else "happiness")
        sad, sad_rel = self._emotion_dir("sad" if self.with_splits else "sadness",
                                         split="test")
        for i in range(3):
            self._ok(happy, happy_rel, f"Training_{i}.jpg", face(i))
            self._ok(sad, sad_rel, f"PrivateTest_{i}.png", face(100 + i, ".png"))
        # a name that is not valid UTF-8: stored, its name shown with escapes
        with open(os.fsencode(happy) + b"/" + UNDECODABLE, "wb") as fh:
            fh.write(face(7))
        self.ok[f"{happy_rel}/{UNDECODABLE_SHOWN}"] = face(7)
        self._ok(happy, happy_rel, "new\nline | pipe 'quote\".jpg", face(8))  # valid UTF-8, hostile for text
        # a link that stays inside the root is allowed
        (happy / "inside_link.jpg").symlink_to(sad / "PrivateTest_0.png")
        self.ok[f"{happy_rel}/inside_link.jpg"] = face(100, ".png")

        q = self.quarantined
        _mkfifo(happy / "pipe.png")
        q[f"{happy_rel}/pipe.png"] = "not a regular file"
        self.sockets.append(_mksocket(sad / "sock.png"))
        q[f"{sad_rel}/sock.png"] = "not a regular file"
        (happy / "passwd.jpg").symlink_to("/etc/passwd")
        (happy / "secret.jpg").symlink_to(self.outside / "secret.txt")
        (happy / "outside.jpg").symlink_to(self.outside / "outside_face.jpg")
        for name in ("passwd.jpg", "secret.jpg", "outside.jpg"):
            q[f"{happy_rel}/{name}"] = "outside the source root"
            self.outside_rel.add(f"{happy_rel}/{name}")
        fear, fear_rel = (self.root / ("train/fear" if self.with_splits else "fear"),
                          "train/fear" if self.with_splits else "fear")
        fear.symlink_to(self.outside / "folder", target_is_directory=True)
        q[fear_rel] = "outside the source root"
        self.outside_rel.add(fear_rel)
        (happy / "dangling.jpg").symlink_to(happy / "nowhere.jpg")
        q[f"{happy_rel}/dangling.jpg"] = "dangling symbolic link"
        (happy / "loop_a.jpg").symlink_to(happy / "loop_b.jpg")
        (happy / "loop_b.jpg").symlink_to(happy / "loop_a.jpg")
        q[f"{happy_rel}/loop_a.jpg"] = q[f"{happy_rel}/loop_b.jpg"] = "symlink loop"
        (happy / "up").symlink_to(happy.parent, target_is_directory=True)
        q[f"{happy_rel}/up"] = "symlink loop"
        (happy / "corrupt.jpg").write_bytes(corrupt_jpeg())
        q[f"{happy_rel}/corrupt.jpg"] = "corrupt JPEG"
        (happy / "garbled.jpg").write_bytes(garbled_jpeg())
        q[f"{happy_rel}/garbled.jpg"] = "corrupt JPEG"
        (happy / "tiny.png").write_bytes(cv2.imencode(".png", np.zeros((1, 1), np.uint8))[1].tobytes())
        q[f"{happy_rel}/tiny.png"] = "too small"
        (happy / ".DS_Store").write_bytes(b"junk")
        q[f"{happy_rel}/.DS_Store"] = "hidden"
        # the same hazards at the root and (FER layout) split level
        levels = [("", self.root)] + ([("train/", self.root / "train")] if self.with_splits else [])
        for prefix, folder in levels:
            (folder / "dangling_top.jpg").symlink_to(folder / "missing.jpg")
            q[f"{prefix}dangling_top.jpg"] = "dangling symbolic link"
            (folder / "loop_x").symlink_to(folder / "loop_y")
            (folder / "loop_y").symlink_to(folder / "loop_x")
            q[f"{prefix}loop_x"] = q[f"{prefix}loop_y"] = "symlink loop"
            (folder / "self_loop").symlink_to(folder / "self_loop")
            q[f"{prefix}self_loop"] = "symlink loop"
            _mkfifo(folder / "top_pipe.jpg")
            q[f"{prefix}top_pipe.jpg"] = "not a regular file"
            (folder / "top_passwd.jpg").symlink_to("/etc/passwd")
            q[f"{prefix}top_passwd.jpg"] = "outside the source root"
            self.outside_rel.add(f"{prefix}top_passwd.jpg")
        # a folder that cannot be read (made unreadable by the test through os.scandir, as root reads anything)
        locked, locked_rel = self._emotion_dir("angry" if self.with_splits else "anger")
        (locked / "hidden_from_us.jpg").write_bytes(face(300))
        q[locked_rel] = "unreadable folder"
        self.locked = locked

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture(params=[True, False], ids=["fer_layout", "kaggle_layout"])
def corpus(request, tmp_path, monkeypatch):
    c = Corpus(tmp_path, with_splits=request.param)
    real_scandir = os.scandir

    def scandir(path="."):
        if where(path) == os.path.realpath(c.locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    yield c
    c.close()


def _outside_hashes(c: Corpus) -> set[str]:
    files = [c.outside / "secret.txt", c.outside / "outside_face.jpg", c.outside / "folder" / "outside_in_folder.jpg"]
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    if os.path.exists("/etc/passwd"):
        hashes.add(hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest())
    return hashes


def _check_outcomes(c: Corpus, rows: dict[str, dict]) -> None:
    """rows: rel_path -> {status, reason, file_size_bytes, content_hash, content}."""
    expected = set(c.ok) | set(c.quarantined)
    assert set(rows) == expected, (sorted(set(rows) - expected), sorted(expected - set(rows)))
    for rel, data in c.ok.items():
        assert rows[rel]["status"] == "ok", (rel, rows[rel]["reason"])
        assert rows[rel]["content"] is None or rows[rel]["content"] == data
        assert rows[rel]["content_hash"] == hashlib.sha256(data).hexdigest()
    for rel, reason in c.quarantined.items():
        assert rows[rel]["status"] == "quarantined", rel
        assert reason in rows[rel]["reason"], (rel, rows[rel]["reason"])
    for rel in c.outside_rel:  # nothing about an outside target is described
        assert rows[rel]["file_size_bytes"] is None and rows[rel]["content_hash"] is None, rel
    outside = _outside_hashes(c)
    assert not outside & {r["content_hash"] for r in rows.values()}
    assert not any("outside_face" in rel or "outside_in_folder" in rel for rel in rows)  # outside never listed


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [1, 2])
def test_hostile_tree_scans_and_inspects_without_crash_hang_or_escape(corpus, workers, monkeypatch):
    listed: list[str] = []
    fixture_scandir = os.scandir

    def spy_scandir(path="."):
        listed.append(where(path))
        return fixture_scandir(path)

    monkeypatch.setattr(os, "scandir", spy_scandir)
    entries = folders.scan_folder(corpus.root, with_splits=corpus.with_splits)
    real_outside = os.path.realpath(corpus.outside)
    real_root = os.path.realpath(corpus.root)
    assert listed and all(p == real_root or p.startswith(real_root + os.sep) for p in listed), listed
    opened: list[str] = []
    real_open = os.open

    def spy_open(path, flags, *args, dir_fd=None, **kwargs):
        opened.append(where(path, dir_fd))
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(os, "open", spy_open)
    table = folders.inspect_folder(corpus.root, entries, workers=workers, chunk_size=5)
    monkeypatch.undo()
    rows = {r["rel_path"]: r for r in table.to_pylist()}
    assert len(rows) == table.num_rows  # one row per entry, no two with the same path
    _check_outcomes(corpus, rows)
    if workers == 1:  # the spy sees the opens of this process only
        assert opened and not [p for p in opened if p.startswith(real_outside) or p == "/etc/passwd"]


@pytest.mark.timeout(120)
def test_hostile_tree_through_the_assets_into_duckdb(corpus, tmp_path):
    data_dir = tmp_path / "data"
    key = "fer2013_dir" if corpus.with_splits else "kaggle_dir"
    result = materialize(data_dir, selection=["fer2013_images", "kaggle_face_images", "image_catalog", "data_sources",
                                              "emotions", "images"],
                         profile="real", **{key: str(corpus.root)},
                         run_config={"ops": {n: {"config": {"workers": 1}}
                                             for n in ("fer2013_images", "kaggle_face_images")}})
    assert result.success
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        images = con.execute(
            "SELECT i.rel_path, i.content_hash, i.file_size_bytes, p.pixels FROM images i "
            "JOIN image_pixels p ON p.image_id = i.id").fetchall()
        quarantined = con.execute("SELECT rel_path, reason, file_size_bytes, content_hash FROM quarantined_files").fetchall()
    rows = {rel: {"status": "ok", "reason": None, "content_hash": h, "file_size_bytes": n, "content": px}
            for rel, h, n, px in images}
    rows.update({rel: {"status": "quarantined", "reason": reason, "file_size_bytes": n, "content_hash": h,
                       "content": None} for rel, reason, n, h in quarantined})
    assert len(rows) == len(images) + len(quarantined)
    _check_outcomes(corpus, rows)
    stored = b"".join(r[3] for r in images)
    assert SECRET not in stored
    node = "fer2013_images" if corpus.with_splits else "kaggle_face_images"
    meta = result.asset_materializations_for_node(node)[0].metadata  # the summary shown in the UI agrees
    assert meta["files"].value == len(rows)
    assert meta["usable_images"].value == len(images) and meta["quarantined"].value == len(quarantined)
    assert sum(meta["color_spaces"].value.values()) == len(images)
    shown = meta["images_per_emotion_and_split"].value
    assert len(images) == 0 or all(cell in shown for cell in ("label_raw", "|"))


def test_symlink_rule_allows_links_inside_the_root(tmp_path):
    root = tmp_path / "src"
    (root / "anger").mkdir(parents=True)
    (root / "anger" / "a.png").write_bytes(face(1, ".png"))
    (root / "alias").symlink_to(root / "anger", target_is_directory=True)  # folder already read
    (root / "fear").symlink_to(root / "anger", target_is_directory=True)   # same folder, another name
    entries = {e.rel_path: e for e in folders.scan_folder(root, with_splits=False)}
    assert entries["anger/a.png"].problem is None and entries["anger/a.png"].emotion_id == 0
    # a folder reached twice is read once, under its real name; the link gets the reason
    assert "already read" in entries["alias"].problem and "already read" in entries["fear"].problem
    assert set(entries) == {"anger/a.png", "alias", "fear"}


def test_only_entries_read_from_elsewhere_keep_their_own_path(tmp_path):
    """A plain file is read from <resolved root>/<rel_path> (no second copy of the path in memory); a file reached
    through a folder link inside the root keeps where it really is, and both are read."""
    root = tmp_path / "src"
    (root / "anger").mkdir(parents=True)
    (root / "anger" / "a.png").write_bytes(face(1, ".png"))
    (root / ".store").mkdir()  # hidden, so read only through the link
    (root / ".store" / "f.png").write_bytes(face(2, ".png"))
    (root / "fear").symlink_to(root / ".store", target_is_directory=True)
    entries = {e.rel_path: e for e in folders.scan_folder(root, with_splits=False)}
    assert entries["anger/a.png"].fs_path is None
    assert entries["fear/f.png"].fs_path == ".store/f.png"  # names from the resolved root
    table = folders.inspect_folder(root, list(entries.values()), workers=1)
    status = dict(zip(table.column("rel_path").to_pylist(), table.column("status").to_pylist()))
    assert status["anger/a.png"] == status["fear/f.png"] == "ok"


def test_a_symlinked_root_is_resolved(tmp_path):
    real = tmp_path / "real"
    (real / "sad").mkdir(parents=True)
    (real / "sad" / "s.jpg").write_bytes(face(2))
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    table = folders.inspect_folder(link, folders.scan_folder(link, with_splits=False), workers=1)
    assert table.column("status").to_pylist() == ["ok"]


def test_names_that_clash_after_escaping_stay_distinct(tmp_path):
    root = tmp_path / "src"
    (root / "sad").mkdir(parents=True)
    with open(os.fsencode(root / "sad") + b"/" + UNDECODABLE, "wb") as fh:
        fh.write(face(3))
    (root / "sad" / UNDECODABLE_SHOWN).write_bytes(face(4))  # a real name equal to the other's escaped form
    table = folders.inspect_folder(root, folders.scan_folder(root, with_splits=False), workers=1)
    paths = table.column("rel_path").to_pylist()
    assert len(set(paths)) == 2 and f"sad/{UNDECODABLE_SHOWN}" in paths
    assert table.column("status").to_pylist() == ["ok", "ok"]


def test_a_folder_name_that_clashes_after_escaping_keeps_each_file_with_its_own_bytes(tmp_path):
    """Folders 'd<0xff>' (not UTF-8) and 'd\\xff' (that text) show the same name; the folder scanned first keeps
    it, the other's file is renamed and must still be read from where it is, with its own bytes."""
    root = tmp_path / "src"
    (root / "anger").mkdir(parents=True)
    odd = os.fsencode(root / "anger") + b"/d\xff"
    os.mkdir(odd)
    with open(odd + b"/a.jpg", "wb") as fh:
        fh.write(face(5))
    (root / "anger" / "d\\xff").mkdir()
    (root / "anger" / "d\\xff" / "a.jpg").write_bytes(face(6))
    entries = folders.scan_folder(root, with_splits=False)
    table = folders.inspect_folder(root, entries, workers=1)
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok"], [r["reason"] for r in rows]
    assert len({r["rel_path"] for r in rows}) == 2
    assert {r["content_hash"] for r in rows} == {imaging.content_hash(face(5)), imaging.content_hash(face(6))}


def test_inspect_reads_under_the_root_the_scan_resolved(tmp_path):
    """A root link repointed between scan and inspect is not followed: the files are read where the scan saw them."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, seed in ((first, 1), (second, 2)):
        (folder / "sad").mkdir(parents=True)
        (folder / "sad" / "s.jpg").write_bytes(face(seed))
    link = tmp_path / "link"
    link.symlink_to(first, target_is_directory=True)
    entries = folders.scan_folder(link, with_splits=False)
    link.unlink()
    link.symlink_to(second, target_is_directory=True)
    table = folders.inspect_folder(link, entries, workers=1)
    assert table.column("content_hash").to_pylist() == [imaging.content_hash(face(1))]


def test_file_swapped_for_a_fifo_after_the_scan_is_not_opened_blocking(tmp_path):
    root = tmp_path / "src"
    (root / "sad").mkdir(parents=True)
    (root / "sad" / "x.jpg").write_bytes(face(5))
    entries = folders.scan_folder(root, with_splits=False)
    (root / "sad" / "x.jpg").unlink()
    os.mkfifo(root / "sad" / "x.jpg")
    [row] = folders.inspect_folder(root, entries, workers=1).to_pylist()
    assert row["status"] == "quarantined" and "not a regular file" in row["reason"]


def test_file_swapped_for_an_outside_link_after_the_scan_is_not_followed(tmp_path):
    root = tmp_path / "src"
    (root / "sad").mkdir(parents=True)
    (root / "sad" / "x.jpg").write_bytes(face(5))
    (tmp_path / "secret.txt").write_bytes(SECRET)
    entries = folders.scan_folder(root, with_splits=False)
    (root / "sad" / "x.jpg").unlink()
    (root / "sad" / "x.jpg").symlink_to(tmp_path / "secret.txt")
    [row] = folders.inspect_folder(root, entries, workers=1).to_pylist()
    assert row["status"] == "quarantined" and row["content_hash"] is None


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("swapped", ["train", "train/sad"])
def test_a_folder_swapped_for_an_outside_link_after_the_scan_is_never_read_through(tmp_path, swapped, workers):
    """Between the scan and the read, an emotion (or split) folder is replaced by a link to an outside folder
    holding files of the same names: not one of them may be read. Every folder on the way is opened from the
    one before without following links."""
    root, outside = tmp_path / "src", tmp_path / "outside"
    names = [f"Training_{i}.jpg" for i in range(6)]
    for folder, seed in ((root / "train" / "sad", 0), (outside / "train" / "sad", 100)):
        folder.mkdir(parents=True)
        for i, name in enumerate(names):
            (folder / name).write_bytes(face(seed + i))
    entries = folders.scan_folder(root, with_splits=True)
    (root / swapped).rename(tmp_path / "moved_aside")
    (root / swapped).symlink_to(outside / swapped, target_is_directory=True)
    rows = folders.inspect_folder(root, entries, workers=workers, chunk_size=2).to_pylist()
    assert len(rows) == len(names)
    outside_hashes = {imaging.content_hash(face(100 + i)) for i in range(len(names))}
    assert not outside_hashes & {r["content_hash"] for r in rows}
    assert all(r["status"] == "quarantined" and "symbolic link appeared since the scan" in r["reason"] for r in rows)


def test_a_folder_swapped_for_a_link_during_the_scan_is_not_listed_through_it(tmp_path, monkeypatch):
    """The scan itself lists each folder through a descriptor opened without following links: a folder replaced
    by a link after its parent was listed is a row, and nothing behind the link is listed."""
    root, outside = tmp_path / "src", tmp_path / "outside"
    (root / "sadness").mkdir(parents=True)
    (root / "sadness" / "s.jpg").write_bytes(face(1))
    outside.mkdir()
    (outside / "o.jpg").write_bytes(face(2))
    real_scandir = os.scandir
    listed = []

    def swap() -> None:
        (root / "sadness").rename(tmp_path / "aside")
        (root / "sadness").symlink_to(outside, target_is_directory=True)

    class SwapWhenListed:
        """The root's listing, which swaps the folder as soon as the walk has read it to the end."""

        def __init__(self, it):
            self.it = it

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.it.close()

        def __iter__(self):
            yield from self.it
            swap()

    def scandir(path="."):
        listed.append(where(path))
        it = real_scandir(path)
        # the root is listed twice (layout check, then the walk): the walk's listing swaps
        return SwapWhenListed(it) if listed.count(os.path.realpath(root)) == 2 else it

    monkeypatch.setattr(os, "scandir", scandir)
    rows = _rows(root, with_splits=False)
    assert not [p for p in listed if p.startswith(os.path.realpath(outside))]
    assert rows["sadness"]["status"] == "quarantined" and "symbolic link appeared" in rows["sadness"]["reason"]
    assert not any("o.jpg" in rel for rel in rows)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_hard_link_to_an_outside_file_is_not_read_and_links_inside_the_tree_are(tmp_path, workers):
    """A file with more names than the scan met in the tree has one elsewhere, maybe outside the root: refused
    unread. Names that are all in the tree (a folder hard-linked for de-duplication) are read as usual."""
    root, outside = tmp_path / "src", tmp_path / "outside"
    for name in ("sadness", "anger"):
        (root / name).mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(face(9))
    os.link(outside / "secret.jpg", root / "sadness" / "linked_out.jpg")
    (root / "sadness" / "s.jpg").write_bytes(face(1))
    os.link(root / "sadness" / "s.jpg", root / "anger" / "same_as_s.jpg")  # both names inside
    entries = folders.scan_folder(root, with_splits=False)
    rows = {r["rel_path"]: r for r in folders.inspect_folder(root, entries, workers=workers, chunk_size=1).to_pylist()}
    out = rows["sadness/linked_out.jpg"]
    assert out["status"] == "quarantined" and out["reason"].startswith("hard link: the file has 2 names and only 1")
    assert out["content_hash"] is None and out["file_size_bytes"] is None
    assert rows["sadness/s.jpg"]["status"] == rows["anger/same_as_s.jpg"]["status"] == "ok"
    # a file replaced by a hard link to an outside file after the scan is refused as well
    (root / "sadness" / "s.jpg").unlink()
    os.link(outside / "secret.jpg", root / "sadness" / "s.jpg")
    rows = {r["rel_path"]: r for r in folders.inspect_folder(root, entries, workers=1).to_pylist()}
    assert rows["sadness/s.jpg"]["status"] == "quarantined" and rows["sadness/s.jpg"]["content_hash"] is None


def test_fer_layout_lists_folders_that_are_not_splits(tmp_path):
    root = tmp_path / "src"
    (root / "train" / "sad").mkdir(parents=True)
    (root / "train" / "sad" / "a.jpg").write_bytes(face(1))
    (root / "validation" / "sad").mkdir(parents=True)
    (root / "validation" / "sad" / "b.jpg").write_bytes(face(2))
    entries = {e.rel_path: e for e in folders.scan_folder(root, with_splits=True)}
    assert set(entries) == {"train/sad/a.jpg", "validation/sad/b.jpg"}
    assert "not a split" in entries["validation/sad/b.jpg"].problem


def test_unreadable_root_is_a_clear_error(tmp_path, monkeypatch):
    root = tmp_path / "src"
    (root / "sad").mkdir(parents=True)

    def scandir(path="."):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(folders.FolderLayoutError, match="cannot read"):
        folders.scan_folder(root, with_splits=False)


def test_min_side_and_corrupt_jpeg_reach_the_rows(tmp_path):
    root = tmp_path / "src"
    (root / "sad").mkdir(parents=True)
    (root / "sad" / "small.png").write_bytes(face(1, ".png", size=12))
    (root / "sad" / "c.jpg").write_bytes(corrupt_jpeg())
    entries = folders.scan_folder(root, with_splits=False)
    rows = {r["rel_path"]: r for r in folders.inspect_folder(root, entries, workers=1).to_pylist()}
    assert rows["sad/small.png"]["reason"].startswith("too small")
    assert rows["sad/c.jpg"]["reason"].startswith("corrupt JPEG")
    loose = {r["rel_path"]: r for r in folders.inspect_folder(root, entries, workers=1, min_side=8).to_pylist()}
    assert loose["sad/small.png"]["status"] == imaging.OK


# One defect per test (each failed before the fix), in both layouts.

def _small_tree(tmp: Path, with_splits: bool) -> tuple[Path, Path, str]:
    """A source with one valid image; returns (root, emotion folder, its rel path)."""
    root = tmp / "src"
    rel = "train/happy" if with_splits else "happiness"
    (root / rel).mkdir(parents=True)
    (root / rel / "good.jpg").write_bytes(face(1))
    return root, root / rel, rel


def _rows(root: Path, with_splits: bool) -> dict[str, dict]:
    entries = folders.scan_folder(root, with_splits=with_splits)
    return {r["rel_path"]: r for r in folders.inspect_folder(root, entries, workers=1).to_pylist()}


layouts = pytest.mark.parametrize("with_splits", [True, False], ids=["fer_layout", "kaggle_layout"])


@layouts
def test_name_not_utf8_is_stored_with_escapes_and_others_kept(tmp_path, with_splits):
    root, emo, rel = _small_tree(tmp_path, with_splits)
    with open(os.fsencode(emo) + b"/" + UNDECODABLE, "wb") as fh:
        fh.write(face(2))
    rows = _rows(root, with_splits)
    assert rows[f"{rel}/{UNDECODABLE_SHOWN}"]["status"] == "ok"
    assert rows[f"{rel}/good.jpg"]["status"] == "ok"


@layouts
@pytest.mark.timeout(30)
def test_symlink_loop_at_root_and_split_level_is_a_row(tmp_path, with_splits):
    root, _, rel = _small_tree(tmp_path, with_splits)
    (root / "loop").symlink_to(root / "loop")
    level = root / rel.split("/")[0] if with_splits else root
    (level / "loop2").symlink_to(level / "loop2")
    rows = _rows(root, with_splits)
    assert rows["loop"]["reason"] == "symlink loop"
    assert "symlink loop" in rows[f"{rel.split('/')[0]}/loop2" if with_splits else "loop2"]["reason"]
    assert rows[f"{rel}/good.jpg"]["status"] == "ok"


@layouts
@pytest.mark.timeout(30)
def test_fifo_in_emotion_folder_is_not_opened(tmp_path, with_splits):
    root, emo, rel = _small_tree(tmp_path, with_splits)
    os.mkfifo(emo / "pipe.png")
    rows = _rows(root, with_splits)
    assert rows[f"{rel}/pipe.png"]["reason"] == "not a regular file (FIFO), not read"


@layouts
def test_file_link_to_etc_passwd_is_not_opened_or_described(tmp_path, with_splits):
    root, emo, rel = _small_tree(tmp_path, with_splits)
    (emo / "passwd.jpg").symlink_to("/etc/passwd")
    row = _rows(root, with_splits)[f"{rel}/passwd.jpg"]
    assert row["reason"] == "outside the source root (symbolic link), not read"
    assert row["file_size_bytes"] is None and row["content_hash"] is None


@layouts
def test_link_to_an_outside_image_is_not_ingested(tmp_path, with_splits):
    root, emo, rel = _small_tree(tmp_path, with_splits)
    (tmp_path / "elsewhere.jpg").write_bytes(face(3))
    (emo / "elsewhere.jpg").symlink_to(tmp_path / "elsewhere.jpg")
    row = _rows(root, with_splits)[f"{rel}/elsewhere.jpg"]
    assert row["status"] == "quarantined" and row["content"] is None and row["content_hash"] is None


@layouts
def test_emotion_folder_linked_outside_is_not_read(tmp_path, with_splits):
    root, emo, rel = _small_tree(tmp_path, with_splits)
    (tmp_path / "outer").mkdir()
    (tmp_path / "outer" / "o.jpg").write_bytes(face(4))
    fear = emo.parent / "fear"
    fear.symlink_to(tmp_path / "outer", target_is_directory=True)
    rows = _rows(root, with_splits)
    fear_rel = fear.relative_to(root).as_posix()
    assert rows[fear_rel]["reason"] == "outside the source root (symbolic link), not read"
    assert not [r for r in rows if r.startswith(fear_rel + "/")]


@layouts
def test_unreadable_folder_is_a_row(tmp_path, with_splits, monkeypatch):
    root, emo, rel = _small_tree(tmp_path, with_splits)
    (emo.parent / "sad").mkdir()
    (emo.parent / "sad" / "s.jpg").write_bytes(face(5))
    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.basename(where(path)) == "sad":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rows = _rows(root, with_splits)
    sad_rel = (emo.parent / "sad").relative_to(root).as_posix()
    assert rows[sad_rel]["reason"] == "unreadable folder: Permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a folder whatever its mode")
def test_unreadable_folder_by_mode_is_a_row(tmp_path):
    root, emo, rel = _small_tree(tmp_path, False)
    (root / "sadness").mkdir()
    (root / "sadness" / "s.jpg").write_bytes(face(5))
    (root / "sadness").chmod(0)
    try:
        assert _rows(root, False)["sadness"]["reason"] == "unreadable folder: Permission denied"
    finally:
        (root / "sadness").chmod(0o755)


@layouts
def test_dangling_link_at_root_is_a_row(tmp_path, with_splits):
    root, emo, rel = _small_tree(tmp_path, with_splits)
    (root / "gone.jpg").symlink_to(root / "missing.jpg")
    (emo / "gone.jpg").symlink_to(emo / "missing.jpg")
    rows = _rows(root, with_splits)
    assert rows["gone.jpg"]["reason"] == rows[f"{rel}/gone.jpg"]["reason"] == "dangling symbolic link"


@pytest.mark.timeout(120)
def test_hostile_survey_csv_through_the_assets_into_duckdb(tmp_path):
    from femo_pipeline import survey

    def row(rid: str, extra: bytes = b"x") -> bytes:
        return ",".join([rid, "10", "3"] + ["0"] * len(survey.EMOTION_COLUMNS)).encode() + b"," + extra

    csv_path = tmp_path / "survey.csv"
    lines = [(",".join(survey.COLUMNS) + ",Comment").encode(), row("1"), row("inf"), row("1e30"), row(""),
             row("9007199254740993"), row("9007199254740992"), row("5", b"caf\xe9"), row("99999999999999999999"),
             row("6") + b",surplus", row("7")]
    csv_path.write_bytes(b"\n".join(lines) + b"\n")
    data_dir = tmp_path / "data"
    result = materialize(data_dir, selection=["everyday_emotions_survey", "survey_responses"], profile="real",
                         survey_csv=str(csv_path))
    assert result.success
    with duckdb.connect(str(data_dir / "warehouse" / "femo.duckdb"), read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM survey_responses ORDER BY id").fetchall()]
        rejected = dict(con.execute("SELECT id, reason FROM survey_rejected_rows").fetchall())
    assert ids == [1, 7, 9007199254740992, 9007199254740993]
    assert rejected == {
        "inf": "non-numeric cell", "1e30": "non-integer value", "": "blank cell",
        "5": "row 7, column 'Comment': bytes that are not UTF-8",
        "99999999999999999999": "id outside the signed 64-bit range",
        "6": f"{len(survey.COLUMNS) + 2} fields, the header has {len(survey.COLUMNS) + 1}"}


@pytest.mark.timeout(120)
def test_min_side_is_a_launch_setting_of_the_folder_assets(tmp_path):
    root = tmp_path / "src"
    (root / "sadness").mkdir(parents=True)
    (root / "sadness" / "small.png").write_bytes(face(1, ".png", size=12))
    (root / "sadness" / "big.png").write_bytes(face(2, ".png", size=48))
    data_dir = tmp_path / "data"
    for min_side, expected in ((imaging.DEFAULT_MIN_SIDE, ["big.png"]), (8, ["big.png", "small.png"])):
        result = materialize(data_dir, selection=["kaggle_face_images"], profile="real", kaggle_dir=str(root),
                             run_config={"ops": {"kaggle_face_images": {"config": {"min_side": min_side}}}})
        assert result.success
        table = pq.read_table(staged_file(data_dir, "kaggle_face_images")).to_pylist()
        assert sorted(r["rel_path"].split("/")[-1] for r in table if r["status"] == "ok") == expected


@pytest.mark.timeout(120)
def test_a_full_staging_folder_fails_the_folder_asset_with_the_reason_and_leaves_no_spool(tmp_path, monkeypatch):
    root = tmp_path / "src"
    (root / "sadness").mkdir(parents=True)
    for i in range(6):
        (root / "sadness" / f"{i}.png").write_bytes(face(i, ".png", size=48))
    data_dir = tmp_path / "data"
    real = folders.inspect_folder
    spools = []

    def full_disk(*args, **kwargs):  # the staging folder fills up while the parts are handed over
        spools.append(kwargs.get("spool_dir"))
        real(*args, **kwargs, chunk_size=2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(folders, "inspect_folder", full_disk)
    result = materialize(data_dir, selection=["kaggle_face_images"], profile="real", kaggle_dir=str(root),
                         raise_on_error=False,
                         run_config={"ops": {"kaggle_face_images": {"config": {"workers": 2}}}})
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = failure.step_failure_data.error.to_string()
    assert "kaggle_face_images: cannot stage the files under" in text and os.strerror(errno.ENOSPC) in text
    incoming = data_dir / "staging" / ".incoming"
    assert spools == [incoming]  # beside the staged file, in the data folder
    assert list(incoming.iterdir()) == []  # neither the half-written table nor a spool folder stays
    assert not (data_dir / "staging" / "kaggle_face_images").exists()


@pytest.mark.timeout(120)
def test_a_very_deep_tree_does_not_overflow_the_scan(tmp_path):
    """600 nested folders scanned under a recursion limit of 400: a recursive walk would overflow. (A tree deeper
    than the default limit is not built: pytest's own tmp cleanup, shutil.rmtree, recurses and would overflow.)"""
    root, emo, rel = _small_tree(tmp_path, False)
    deep = emo
    for _ in range(600):
        deep = deep / "d"
        deep.mkdir()
    (deep / "deep.jpg").write_bytes(face(9))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)
    try:
        entries = folders.scan_folder(root, with_splits=False)
    finally:
        sys.setrecursionlimit(limit)
    rows = {r["rel_path"]: r for r in folders.inspect_folder(root, entries, workers=1).to_pylist()}
    assert rows[f"{rel}/good.jpg"]["status"] == "ok"
    [deep_row] = [r for p, r in rows.items() if p.endswith("/deep.jpg")]
    assert deep_row["status"] == "ok" and deep_row["emotion_id"] == 3 and deep_row["rel_path"].split("/").count("d") == 600
