"""Read labelled image folders (FER-2013 and Kaggle layouts) into inspection rows.

Layouts:
- with splits (FER-2013): <root>/<split>/<emotion>/<file>, split in {train, test}
- without splits (Kaggle random images): <root>/<emotion>/<file>
- labelled sets (extra sets): <root>/<set>/<emotion>/<file>, any folder of the root a set (its name in `split`)

Pure module (no Dagster). A wrong folder is a clear FolderLayoutError. Every other entry of the tree gets an
outcome row: a usable file, or a quarantined one with the reason (a file in a folder that names no known
emotion, or outside any emotion folder; a hidden entry; a link that leads out of the source root, dangles or
loops; a FIFO, socket or device; a folder that cannot be read; a file with a hard link elsewhere). The scan never
leaves the resolved source root and never opens anything but regular files inside it: every folder and file is
opened from its parent's descriptor without following links, in the scan and again in the read, so a folder
swapped for a link in between is refused, not followed.

The package re-exports its public names (`folders.scan_folder`, `folders.inspect_folder`, ...); the code lives in
entries (FileEntry and what the modules share), tree (descriptor-relative opening), scan (the layout and the walk)
and reading (reading, inspecting, the worker pool and the spool).
"""

from femo_pipeline.folders.entries import (
    SPLITS,
    FileEntry,
    FolderLayoutError,
    NamePatternError,
    ScannedEntries,
    name_fields,
    name_pattern,
    shown_name,
)
from femo_pipeline.folders.reading import (
    SCHEMA,
    SPOOL_PREFIX,
    can_start_processes,
    inspect_folder,
    read_regular_file,
)
from femo_pipeline.folders.scan import scan_folder

__all__ = [
    "SCHEMA", "SPLITS", "SPOOL_PREFIX", "FileEntry", "FolderLayoutError", "NamePatternError", "ScannedEntries",
    "can_start_processes", "inspect_folder", "name_fields", "name_pattern", "read_regular_file", "scan_folder",
    "shown_name",
]
