"""femo definitions: the warehouse stage (autoloaded by dg from femo_pipeline/defs)."""
