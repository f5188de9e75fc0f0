"""Regenerate rangeexpr/_tables_*.py from the grammars here: ``python3 grammar/build_tables.py``.

Needs ``interegular`` (in the ``test`` extra), for lark's strict mode.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rangeexpr._grammar import GRAMMARS, build_tables, tables_path

for name in GRAMMARS:
    tables_path(name).write_text(build_tables(name), encoding="utf-8")
    print(f"wrote {tables_path(name)}", file=sys.stderr)
