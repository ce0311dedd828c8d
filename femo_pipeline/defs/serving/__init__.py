"""femo definitions: the serving stage (autoloaded by dg from femo_pipeline/defs)."""
