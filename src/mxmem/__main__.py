from mxmem.cli import main

raise SystemExit(main())
