from model.cli.main import main

raise SystemExit(main())
