"""femo definitions: the ingest stage (autoloaded by dg from femo_pipeline/defs)."""
