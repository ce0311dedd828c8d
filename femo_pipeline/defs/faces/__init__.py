"""femo definitions: the faces stage (autoloaded by dg from femo_pipeline/defs)."""
