from isol8.cli import main

raise SystemExit(main())
