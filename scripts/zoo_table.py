"""Write docs/model-zoo.md's table of published checkpoints from the code's (``avloc.zoo``).

Usage: python scripts/zoo_table.py [--check]

Replaces what lies between the ``<!-- zoo-table -->`` and ``<!-- /zoo-table -->`` lines of
``docs/model-zoo.md`` with :func:`avloc.zoo.markdown_table`. ``--check`` writes nothing and exits
1 when the page differs (``tests/test_zoo.py`` runs the same comparison).
"""

from __future__ import annotations

import sys
from pathlib import Path

from avloc.zoo import markdown_table

PAGE = Path(__file__).resolve().parents[1] / "docs" / "model-zoo.md"
START, END = "<!-- zoo-table -->\n", "<!-- /zoo-table -->\n"


def rendered(text: str) -> str:
    """``text`` with its table block replaced by the code's table."""
    head, found, rest = text.partition(START)
    if not found or END not in rest:
        raise SystemExit(f"{PAGE}: no {START.strip()} ... {END.strip()} block")
    return head + START + markdown_table() + END + rest.split(END, 1)[1]


def main(argv: list[str]) -> int:
    text = PAGE.read_text(encoding="utf-8")
    new = rendered(text)
    if "--check" in argv:
        if new != text:
            print(f"{PAGE} is out of date: run python scripts/zoo_table.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
