"""femo definitions: the automation stage (autoloaded by dg from femo_pipeline/defs)."""
