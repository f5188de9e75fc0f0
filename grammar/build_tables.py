"""Regenerate rangeexpr/_tables.py from the grammars here: ``python3 grammar/build_tables.py``.

Needs ``interegular`` (in the ``test`` extra), for lark's strict mode.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rangeexpr._grammar import TABLES_PATH, build_tables

TABLES_PATH.write_text(build_tables(), encoding="utf-8")
print(f"wrote {TABLES_PATH}", file=sys.stderr)
