from isol8.frontends.cli.main import main

raise SystemExit(main())
