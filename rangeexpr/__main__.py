"""``python -m rangeexpr``: the same as the ``rangeexpr`` console script."""

from ._cli import main

raise SystemExit(main())
