"""The server-rendered pages for people: the gallery with its filters (/), one face with its votes and
every reader's guess (/faces/{id}), where the model and people disagree (/disagreements) and the benchmark
report with its plots (/report). Pure module (no Dagster)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from femo_pipeline import headline
from femo_pipeline.api.common import MAX_PAGE_SIZE, ImageIdPath, PageQ
from femo_pipeline.api.queries import (
    _DISAGREEMENT_SQL,
    _FACE_SELECT,
    _LEAK_FREE,
    _SCORED_SQL,
    DUPLICATE_FILTERS,
    SPLITS,
)
from femo_pipeline.api.rendering import (
    _ID_TEXT,
    _LOCAL_IMG,
    CROP_STATUSES,
    GALLERY_PAGE_SIZE,
    NO_PREDICTIONS,
    NO_VOTES,
    REPORT_FILE,
    SEVEN,
    _optional_id,
    _page_links,
    _templates,
    crowd_plurality,
    offline_html,
)
from femo_pipeline.api.snapshot import NO_SNAPSHOT, SnapshotReader
from femo_pipeline.sources import SOURCES
from femo_pipeline.vocab import VOTES_BY_EMOTION_ID

PAGE_PATHS = re.compile(r"^/(|faces/[^/]*|disagreements|report)$")  # HTML pages: their errors are pages too


class PageError(HTTPException):
    """An error of an HTML page with what to do next: links (text, href) shown under the message."""

    def __init__(self, status: int, detail: str, links: list[tuple[str, str]]):
        super().__init__(status, detail)
        self.links = links


def add_pages(app: FastAPI, reader: SnapshotReader, reports_dir: Path) -> None:
    """The HTML pages: gallery (/), one face (/faces/{id}), /disagreements and /report."""
    env = _templates()
    tables_by_snapshot: dict = {}
    app.state.reports_dir = reports_dir  # /benchmark reads the headline from the report there
    add_error_pages(app, env, reports_dir)

    def tables() -> dict[str, int]:
        """Tables and views of the current snapshot -> rows (views: -1), for pages that use what exists."""
        key = reader.key()
        if key not in tables_by_snapshot or key is None:
            with reader.connection() as cur:
                names = cur.execute("SELECT table_name, table_type FROM information_schema.tables "
                                    "WHERE table_schema = 'main'").fetchall()
                found = {}
                for name, kind in names:
                    if kind == "BASE TABLE" and name in ("predictions", "human_votes", "model_runs",
                                                         "benchmark_scores", "verdicts", "face_crops",
                                                         "quarantined_files"):
                        found[name] = cur.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                    else:
                        found[name] = -1
            tables_by_snapshot.clear()
            tables_by_snapshot[reader.key()] = found
        return tables_by_snapshot[reader.key()]

    def render(template: str, **context) -> HTMLResponse:
        synthetic = reader.query("SELECT bool_or(synthetic) AS s FROM images")[0]["s"]
        return HTMLResponse(env.get_template(template).render(synthetic=synthetic, answer=headline.read(reports_dir),
                                                              **context))

    def vocab() -> tuple[list[dict], list[dict]]:
        return (reader.query("SELECT id, source FROM data_sources ORDER BY id"),
                reader.query("SELECT id, emotion FROM emotions ORDER BY id"))

    @app.get("/", response_class=HTMLResponse, summary="Gallery of faces with filters, and the explore forms")
    def home(
        source: str = Query("", pattern=_ID_TEXT, description="Source id (empty: any)."),
        emotion: str = Query("", pattern=_ID_TEXT, description="Emotion id (empty: any)."),
        split: str = Query("", pattern="^(|train|test|none)$", description="train, test or none (no split)."),
        status: str = Query("", pattern=f"^(|{'|'.join(CROP_STATUSES)})$",
                            description="Face detection outcome; not_cropped for sources that need none."),
        duplicates: str = Query("", pattern=f"^(|{'|'.join(DUPLICATE_FILTERS)})$",
                                description="duplicated, cross_split, label_conflict or unique."),
        quarantined: bool = Query(False, description="List the quarantined files (not images) instead."),
        page: int = PageQ,
        page_size: int = Query(GALLERY_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Faces per page."),
    ) -> HTMLResponse:
        sources, emotions = vocab()
        source_id, emotion_id = _optional_id(source, "source"), _optional_id(emotion, "emotion")
        have = tables()
        filters = {"source": source, "emotion": emotion, "split": split, "status": status, "duplicates": duplicates}
        stats = reader.query("SELECT count(*) AS n FROM images")[0]
        common = dict(sources=sources, emotions=emotions, filters=filters, statuses=CROP_STATUSES,
                      duplicate_filters=list(DUPLICATE_FILTERS), max_page_size=MAX_PAGE_SIZE, total_images=stats["n"],
                      quarantined=quarantined, n_quarantined=max(0, have.get("quarantined_files", 0)))
        if quarantined:
            where, params = ["TRUE"], []
            if source_id is not None:
                where, params = ["q.source_id = ?"], [source_id]
            clause = " AND ".join(where)
            total = reader.query(f"SELECT count(*) AS n FROM quarantined_files q WHERE {clause}", params)[0]["n"]
            last_page = max(1, math.ceil(total / page_size))
            if page > last_page:
                raise PageError(404, f"page {page} is past the last page ({last_page})", [
                    ("the last page", _page_links("/", {**filters, "quarantined": "true"}, last_page, last_page,
                                                  page_size)["self"])])
            rows = reader.query(
                "SELECT ds.source, q.rel_path, q.reason, q.file_size_bytes FROM quarantined_files q "
                f"JOIN data_sources ds ON ds.id = q.source_id WHERE {clause} ORDER BY q.source_id, q.rel_path "
                "LIMIT ? OFFSET ?", params + [page_size, (page - 1) * page_size])
            return render("gallery.html", faces=[], files=rows, total=total, page=page, last_page=last_page,
                          links=_page_links("/", {**filters, "quarantined": "true"}, page, last_page, page_size),
                          **common)
        where: list[tuple[str, list]] = []
        if source_id is not None:
            where.append(("i.source_id = ?", [source_id]))
        if emotion_id is not None:
            where.append(("i.emotion_id = ?", [emotion_id]))
        if split:
            where.append((SPLITS[split], []))
        if duplicates:
            where.append((DUPLICATE_FILTERS[duplicates], []))
        crops = "face_crops" in have
        if status and not crops:
            where.append(("FALSE", []))
        elif status == "not_cropped":
            where.append(("fc.image_id IS NULL", []))
        elif status:
            where.append(("fc.status = ?", [status]))
        clause = " AND ".join(sql for sql, _ in where) or "TRUE"
        params = [p for _, ps in where for p in ps]
        join = "LEFT JOIN face_crops fc ON fc.image_id = i.id" if crops else ""
        status_col = "fc.status" if crops else "NULL"
        total = reader.query(f"SELECT count(*) AS n FROM images i {join} WHERE {clause}", params)[0]["n"]
        last_page = max(1, math.ceil(total / page_size))
        if page > last_page:
            raise PageError(404, f"page {page} is past the last page ({last_page}; {total} faces)", [
                ("the last page", _page_links("/", filters, last_page, last_page, page_size)["self"]),
                ("all faces, no filters", "/")])
        faces = reader.query(
            f"SELECT i.id, ds.source, e.emotion, i.split, i.usage, i.width, i.height, i.duplicate_count, "
            f"i.duplicate_cross_split, i.duplicate_label_conflict, {status_col} AS crop_status "
            f"FROM images i JOIN data_sources ds ON ds.id = i.source_id JOIN emotions e ON e.id = i.emotion_id "
            f"{join} WHERE {clause} ORDER BY i.source_id DESC, i.emotion_id, i.id LIMIT ? OFFSET ?",
            params + [page_size, (page - 1) * page_size])
        return render("gallery.html", faces=faces, files=[], total=total, page=page, last_page=last_page,
                      links=_page_links("/", filters, page, last_page, page_size), **common)

    @app.get("/faces/{image_id}", response_class=HTMLResponse, summary="One face: label, votes, every reader's guess")
    def face_page(image_id: int = ImageIdPath) -> HTMLResponse:
        rows = reader.query(f"{_FACE_SELECT} WHERE i.id = ?", [image_id])
        if not rows:
            raise PageError(404, f"no face with id {image_id} in the served snapshot", [
                ("the gallery", "/"), ("faces of the FER-2013 test set", f"/?source={SOURCES['fer2013'].id}&split=test")])
        face = rows[0]
        have = tables()
        crop = None
        if "face_crops" in have:
            found = reader.query("SELECT status, reason, n_faces FROM face_crops WHERE image_id = ?", [image_id])
            crop = found[0] if found else None
        twins = reader.query(
            "SELECT i.id, ds.source, e.emotion, i.split, i.usage FROM images i JOIN data_sources ds ON ds.id = i.source_id "
            "JOIN emotions e ON e.id = i.emotion_id WHERE i.content_hash = ? AND i.id <> ? ORDER BY i.id LIMIT 50",
            [face["content_hash"], image_id])
        units = reader.query(
            "SELECT fs.action_unit, fs.description, fs.facial_muscle, feu.note FROM facs_emotions_units feu "
            "JOIN facs_single_units fs ON feu.action_units = fs.action_unit WHERE feu.emotion = ? "
            "ORDER BY fs.action_unit", [face["emotion_id"]])
        votes, votes_note, crowd = [], NO_VOTES, None
        if have.get("human_votes", 0) > 0:
            found = reader.query("SELECT * FROM human_votes WHERE image_id = ?", [image_id])
            plurality, top, seven = crowd_plurality(found[0]) if found else ([], 0, 0)
            if plurality:
                crowd = {"emotions": plurality, "votes": top, "of": seven,
                         "text": f"{' / '.join(e.capitalize() for e in plurality)}, {top} of {seven}"}
            if found:
                total = sum(found[0].get(c) or 0 for c in VOTES_BY_EMOTION_ID)
                label = face["emotion"].lower()
                votes = [{"name": "not a face" if c == "NF" else c, "count": found[0].get(c) or 0,
                          "share": (found[0].get(c) or 0) / total if total else 0.0, "is_label": c == label}
                         for c in VOTES_BY_EMOTION_ID]
                votes_note = f"{total} votes" + (" (synthetic)" if found[0].get("synthetic") else "")
        predictions, predictions_note = [], NO_PREDICTIONS
        if have.get("predictions", 0) > 0:
            runs = "model_runs" in have
            found = reader.query(
                "SELECT p.*, e.emotion AS predicted, " + ("coalesce(m.reader, p.model_run_id) AS reader_name, "
                                                         "m.synthetic AS run_synthetic, m.caveat " if runs else
                                                         "p.model_run_id AS reader_name, NULL AS run_synthetic, NULL AS caveat ")
                + "FROM predictions p JOIN emotions e ON e.id = p.emotion_id "
                + ("LEFT JOIN model_runs m ON m.id = p.model_run_id " if runs else "")
                + "WHERE p.image_id = ? ORDER BY reader_name", [image_id])
            for row in found:
                probs = [{"name": c, "p": row.get(f"p_{c}")} for c in SEVEN if row.get(f"p_{c}") is not None]
                chosen = row.get(f"p_{row['predicted'].lower()}")
                predictions.append({"reader": row["reader_name"], "predicted": row["predicted"], "p": chosen,
                                    "right": row["emotion_id"] == face["emotion_id"],
                                    "right_crowd": row["predicted"].lower() in crowd["emotions"] if crowd else None,
                                    "probabilities": probs, "synthetic": row["run_synthetic"],
                                    "caveat": row["caveat"]})
            predictions_note = "" if predictions else "No reader has a prediction for this face (models score test images)."
        return render("face.html", face=face, crop=crop, twins=twins, units=units, votes=votes, votes_note=votes_note,
                      crowd=crowd, predictions=predictions, predictions_note=predictions_note)

    @app.get("/disagreements", response_class=HTMLResponse,
             summary="Faces the model gets right and most annotators wrong, and the reverse, per emotion")
    def disagreements(
        reader_id: str = Query("", max_length=200, description="model_runs id (empty: the declared model)."),
        emotion: str = Query("", pattern=_ID_TEXT, description="Show the faces of this emotion (empty: all)."),
        examples: int = Query(12, ge=0, le=60, description="Faces shown per emotion and kind."),
        leak_free: bool = Query(False, description="Only test faces whose bytes are not also in Training."),
    ) -> HTMLResponse:
        have = tables()
        _, emotions = vocab()
        emotion_id = _optional_id(emotion, "emotion")
        context = dict(emotions=emotions, readers=[], chosen=None, counts=[], groups=[], note="", emotion=emotion,
                       reader_id=reader_id, leak_free=leak_free)
        if have.get("predictions", 0) <= 0:
            return render("disagreements.html", **{**context, "note": NO_PREDICTIONS})
        if have.get("human_votes", 0) <= 0:
            return render("disagreements.html", **{**context, "note": "No FER+ votes in the snapshot: people's "
                                                   "answers are needed to say where they and the model disagree."})
        runs = "model_runs" in have
        readers = reader.query(
            "SELECT p.model_run_id AS id, " + ("coalesce(m.reader, p.model_run_id)" if runs else "p.model_run_id")
            + " AS name, count(*) AS n FROM predictions p "
            + ("LEFT JOIN model_runs m ON m.id = p.model_run_id " if runs else "")
            + "GROUP BY ALL ORDER BY n DESC, id")
        declared = reader.query("SELECT value FROM warehouse_info WHERE key = 'declared_model_run'") \
            if "warehouse_info" in have else []
        ids = [r["id"] for r in readers]
        chosen = reader_id or (declared[0]["value"] if declared and declared[0]["value"] in ids else ids[0])
        if chosen not in ids:
            raise PageError(404, "no predictions from that reader", [("the declared model's disagreements",
                                                                       "/disagreements")])
        leak = _LEAK_FREE if leak_free else ""
        rows = reader.query(_DISAGREEMENT_SQL.replace("{leak_free}", leak), [chosen])
        counts = []
        for e in emotions:
            if e["id"] > 6:
                continue
            mine = [r for r in rows if r["label_id"] == e["id"]]
            counts.append({"id": e["id"], "emotion": e["emotion"],
                           "model_right": sum(r["kind"] == "model" for r in mine),
                           "people_right": sum(r["kind"] == "people" for r in mine)})
        scored = {r["label_id"]: r["n"] for r in reader.query(_SCORED_SQL.replace("{leak_free}", leak), [chosen])}
        for c in counts:
            c["scored"] = scored.get(c["id"], 0)
        groups = []
        for c in counts:
            if emotion_id is not None and c["id"] != emotion_id:
                continue
            for kind, title in (("model", "model right, most people wrong"), ("people", "most people right, model wrong")):
                faces = [r for r in rows if r["label_id"] == c["id"] and r["kind"] == kind]
                if faces:
                    groups.append({"emotion": c["emotion"], "kind": kind, "title": title, "total": len(faces),
                                   "faces": faces[:examples]})
        name = next(r["name"] for r in readers if r["id"] == chosen)
        return render("disagreements.html", **{**context, "readers": readers, "chosen": chosen, "chosen_name": name,
                                               "counts": counts, "groups": groups,
                                               "total_model": sum(c["model_right"] for c in counts),
                                               "total_people": sum(c["people_right"] for c in counts)})

    @app.get("/report", response_class=HTMLResponse, summary="The benchmark report with its plots")
    def report() -> HTMLResponse:
        import markdown

        md_path = reports_dir / "benchmark.md"
        body, scores, verdicts = "", [], []
        if md_path.is_file():
            body = markdown.markdown(md_path.read_text(encoding="utf-8"), extensions=["tables"])
            body = _LOCAL_IMG.sub(lambda m: f"{m.group(1)}/report/files/{m.group(2)}{m.group(3)}", body)
            body = offline_html(body)
        have = tables()
        if have.get("benchmark_scores", 0) > 0:
            scores = reader.query("SELECT dataset, reference, variant, reader, metric, value, ci_low, ci_high, n "
                                  "FROM benchmark_scores ORDER BY dataset, reference, variant, metric, value DESC")
        if have.get("verdicts", 0) > 0:
            verdicts = reader.query("SELECT dataset, reference, variant, reader, against, difference_pp, ci_low_pp, "
                                    "ci_high_pp, verdict, images FROM verdicts ORDER BY dataset, reference, variant, reader")
        response = render("report.html", body=body, scores=scores, verdicts=verdicts)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/report/files/{name}", include_in_schema=False)
    def report_file(name: str) -> FileResponse:
        path = reports_dir / name
        # a link in the reports folder is not served: it could point anywhere on the machine
        if not REPORT_FILE.match(name) or path.is_symlink() or not path.is_file():
            raise HTTPException(404, "no such report file")
        return FileResponse(path)


def add_error_pages(app: FastAPI, env, reports_dir: Path) -> None:
    """Errors of the HTML pages (and of unknown addresses asked for by a browser) answer as pages that say what
    went wrong and what to do next, with the same status; the JSON API keeps its JSON errors."""
    json_http = app.exception_handlers[StarletteHTTPException]
    json_invalid = app.exception_handlers[RequestValidationError]

    def is_page(request: Request, status: int) -> bool:
        if PAGE_PATHS.match(request.url.path):
            return True
        return status == 404 and "text/html" in request.headers.get("accept", "") and "route" not in request.scope

    def page(status: int, title: str, message: str | list[str], links: list[tuple[str, str]]) -> HTMLResponse:
        messages = message if isinstance(message, list) else [message]
        body = env.get_template("error.html").render(synthetic=False, answer=headline.read(reports_dir), title=title,
                                                     status=status, messages=messages, links=links)
        return HTMLResponse(body, status_code=status)

    async def http_error(request: Request, exc: StarletteHTTPException):
        if not is_page(request, exc.status_code):
            return await json_http(request, exc)
        if exc.status_code == 503 and exc.detail == NO_SNAPSHOT:
            return page(503, "Nothing to show yet", "There is no serving snapshot yet: the pages read it, and no run "
                        "has published one (the asset serving_snapshot does).",
                        [("Make one with `femo demo` (synthetic data, about a minute) or `femo run` (your data), "
                          "then reload this page", request.url.path)])
        links = getattr(exc, "links", None) or [("the gallery", "/")]
        title = "Not found" if exc.status_code == 404 else "Something is not right"
        return page(exc.status_code, title, str(exc.detail), links)

    async def invalid(request: Request, exc: RequestValidationError):
        if not is_page(request, 422):
            return await json_invalid(request, exc)
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        path = request.url.path
        links = [("the gallery", "/")] if path.startswith("/faces/") else [("the same page without its filters", path)]
        return page(422, "That address has a value the page cannot use", problems, links)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
