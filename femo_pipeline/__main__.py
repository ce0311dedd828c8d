from femo_pipeline.cli import main

raise SystemExit(main())
