"""``python -m actorio``: see `actorio._cli`."""

from ._cli import main

raise SystemExit(main())
