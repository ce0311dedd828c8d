"""femo: is AI better than humans at reading facial emotions? A Dagster pipeline that measures it."""
