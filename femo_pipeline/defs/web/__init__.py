"""femo definitions: the web stage (autoloaded by dg from femo_pipeline/defs)."""
