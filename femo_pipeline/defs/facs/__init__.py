"""femo definitions: the facs stage (autoloaded by dg from femo_pipeline/defs)."""
