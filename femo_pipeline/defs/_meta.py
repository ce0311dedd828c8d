"""Helpers that turn results into Dagster metadata (tables, schemas, pictures)."""


import base64
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa

_ARROW_TO_TYPE = {"large_string": "string", "binary": "bytes", "large_binary": "bytes", "bool": "bool"}


def md_table(frame: pd.DataFrame, max_rows: int = 30) -> dg.MetadataValue:
    """A Markdown preview of a frame (first max_rows rows)."""
    shown = frame.head(max_rows)
    text = shown.to_markdown(index=False) if not shown.empty else "_(no rows)_"
    if len(frame) > max_rows:
        text += f"\n\n_{len(frame) - max_rows} more rows not shown_"
    return dg.MetadataValue.md(text)


def column_schema(schema: pa.Schema, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f.name, _ARROW_TO_TYPE.get(str(f.type), str(f.type)), description=descriptions.get(f.name))
            for f in schema
        ]
    )


def table_schema(table: str) -> dg.TableSchema:
    """The warehouse table's columns with their types, keys and descriptions (from sql/comments.sql)."""
    from femo_pipeline.warehouse import column_docs

    return dg.TableSchema(columns=[
        dg.TableColumn(c["name"], c["type"], description=c["description"] or None,
                       constraints=dg.TableColumnConstraints(nullable=c["nullable"], unique=c["primary_key"]))
        for c in column_docs()[table]["columns"]])


def warehouse_tables(*tables: str, other_schemas: bool = True) -> dict:
    """Definition metadata of an asset that writes these warehouse tables (the first is its main table): the
    column schema with descriptions, the table name, and (other_schemas) the other tables' schemas. Shown in the
    UI before any run."""
    from femo_pipeline.warehouse import column_docs

    docs = column_docs()
    meta = {"dagster/column_schema": table_schema(tables[0]), "dagster/table_name": f"main.{tables[0]}",
            "warehouse_tables": dg.MetadataValue.md("\n".join(
                f"- `{t}`: {docs[t]['description']}" for t in tables))}
    if other_schemas:
        meta.update({f"columns of {t}": table_schema(t) for t in tables[1:]})
    return meta


def percent_table(frame: pd.DataFrame, percent: tuple[str, ...] = (), points: tuple[str, ...] = (),
                  max_rows: int = 60) -> dg.MetadataValue:
    """A frame as Dagster table metadata (sortable in the UI), fractions in `percent` shown as "81.2 %" and
    differences in `points` as "+3.4"."""
    shown = frame.head(max_rows).copy()
    for c in percent:
        shown[c] = [("n/a" if v is None or v != v else f"{100 * v:.1f} %") for v in shown[c]]
    for c in points:
        shown[c] = [("n/a" if v is None or v != v else f"{v:+.1f}") for v in shown[c]]
    shown = shown.astype(object).where(shown.notna(), None)
    columns = [dg.TableColumn(str(c), "string" if shown[c].map(lambda v: isinstance(v, str)).any()
                              else "number" if pd.api.types.is_numeric_dtype(frame[c]) else "string")
               for c in shown.columns]
    records = [dg.TableRecord({str(k): (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                               for k, v in row.items()}) for row in shown.to_dict("records")]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def png_md(path: Path, caption: str = "") -> dg.MetadataValue:
    """A PNG shown inline in the Dagster UI (Markdown with a data URI)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{data})")
