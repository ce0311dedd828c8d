"""femo definitions: the eda stage (autoloaded by dg from femo_pipeline/defs)."""
