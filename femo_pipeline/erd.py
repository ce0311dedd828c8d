"""Entity-relationship diagram drawn from a live DuckDB schema: Mermaid text and a PNG picture.

Pure module (duckdb, matplotlib; no Dagster).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from femo_pipeline.files import atomic_path


@dataclass
class Table:
    name: str
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    primary_key: set[str] = field(default_factory=set)
    foreign_keys: list[tuple[list[str], str, list[str]]] = field(default_factory=list)  # (cols, ref_table, ref_cols)


def read_schema(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, Table], list[str]]:
    """Tables (with columns, primary and foreign keys) and view names of the main schema."""
    tables: dict[str, Table] = {}
    for name, column, dtype in con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = 'main' AND NOT internal AND table_name IN "
        "(SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main') ORDER BY table_name, column_index"
    ).fetchall():
        tables.setdefault(name, Table(name)).columns.append((column, dtype))
    for name, kind, cols, ref_table, ref_cols in con.execute(
        "SELECT table_name, constraint_type, constraint_column_names, referenced_table, referenced_column_names "
        "FROM duckdb_constraints() WHERE schema_name = 'main' AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')"
    ).fetchall():
        if name not in tables:
            continue
        if kind == "PRIMARY KEY":
            tables[name].primary_key.update(cols)
        else:
            tables[name].foreign_keys.append((list(cols), ref_table, list(ref_cols)))
    views = [r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal ORDER BY view_name").fetchall()]
    return tables, views


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def to_mermaid(tables: dict[str, Table]) -> str:
    lines = ["erDiagram"]
    for table in tables.values():
        fk_cols = {c for cols, _, _ in table.foreign_keys for c in cols}
        lines.append(f"    {_ident(table.name)} {{")
        for col, dtype in table.columns:
            keys = ",".join(k for k, on in (("PK", col in table.primary_key), ("FK", col in fk_cols)) if on)
            lines.append(f"        {_ident(dtype)} {_ident(col)}{' ' + keys if keys else ''}")
        lines.append("    }")
    for table in tables.values():
        for cols, ref, _ in table.foreign_keys:
            lines.append(f'    {_ident(ref)} ||--o{{ {_ident(table.name)} : "{", ".join(cols)}"')
    return "\n".join(lines) + "\n"


def _levels(tables: dict[str, Table]) -> dict[str, int]:
    level: dict[str, int] = {}

    def depth(name: str, seen: frozenset = frozenset()) -> int:
        if name in level:
            return level[name]
        refs = [r for _, r, _ in tables[name].foreign_keys if r in tables and r != name and r not in seen]
        level[name] = 1 + max((depth(r, seen | {name}) for r in refs), default=-1)
        return level[name]

    for name in tables:
        depth(name)
    return level


def render_png(tables: dict[str, Table], path: str | Path, title: str = "femo warehouse") -> Path:
    """Draw tables as boxes in columns by foreign-key depth (parents left), with an arrow per foreign key."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    level = _levels(tables)
    columns: dict[int, list[str]] = {}
    for name in sorted(tables, key=lambda n: (level[n], n)):
        columns.setdefault(level[name], []).append(name)
    row_h, box_w, gap_x, gap_y = 0.32, 3.6, 1.6, 0.5
    pos: dict[str, tuple[float, float]] = {}  # top-left corner
    height_total = 0.0
    for lvl, names in columns.items():
        y = 0.0
        for name in names:
            pos[name] = (lvl * (box_w + gap_x), -y)
            y += (len(tables[name].columns) + 1) * row_h + gap_y
        height_total = max(height_total, y)
    width_total = (max(columns) + 1) * (box_w + gap_x)
    fig, ax = plt.subplots(figsize=(max(8.0, width_total * 1.1), max(6.0, height_total * 0.9)))
    for name, (x, y) in pos.items():
        table = tables[name]
        fk_cols = {c for cols, _, _ in table.foreign_keys for c in cols}
        n = len(table.columns)
        ax.add_patch(plt.Rectangle((x, y - (n + 1) * row_h), box_w, (n + 1) * row_h, fill=False, lw=1.2))
        ax.add_patch(plt.Rectangle((x, y - row_h), box_w, row_h, color="#2b6cb0"))
        ax.text(x + 0.08, y - row_h / 2, name, va="center", color="white", fontsize=9, fontweight="bold")
        for i, (col, dtype) in enumerate(table.columns):
            keys = [k for k, on in (("PK", col in table.primary_key), ("FK", col in fk_cols)) if on]
            tag = ",".join(keys) + " " if keys else ""
            ax.text(x + 0.08, y - (i + 1.5) * row_h, f"{tag}{col}", va="center", fontsize=7,
                    fontweight="bold" if "PK" in keys else "normal")
            ax.text(x + box_w - 0.08, y - (i + 1.5) * row_h, dtype.lower()[:14], va="center", ha="right",
                    fontsize=6, color="#555")
    for name, table in tables.items():
        for cols, ref, ref_cols in table.foreign_keys:
            if ref not in pos:
                continue
            src_row = [c for c, _ in table.columns].index(cols[0])
            dst_row = [c for c, _ in tables[ref].columns].index(ref_cols[0]) if ref_cols else 0
            (sx, sy), (dx, dy) = pos[name], pos[ref]
            start = (sx, sy - (src_row + 1.5) * row_h)
            end = (dx + box_w, dy - (dst_row + 1.5) * row_h)
            ax.annotate("", xy=end, xytext=start,
                        arrowprops=dict(arrowstyle="->", color="#c05621", lw=1, connectionstyle="arc3,rad=0.15"))
    ax.set_xlim(-0.3, width_total)
    ax.set_ylim(-height_total - 0.3, 0.6)
    ax.set_title(f"{title}: {len(tables)} tables, arrows point from foreign key to the key it references", fontsize=10)
    ax.axis("off")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
