"""femo definitions: the model stage (autoloaded by dg from femo_pipeline/defs)."""
