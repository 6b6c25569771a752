"""The CDDL of docs/frames.md, read from the page itself and checked with zcbor.

    schema = load_schema()                 # every ```cddl block of docs/frames.md
    schema.valid_cbor("frame", wire)       # True / False
    schema.valid("heartbeat", payload)     # a decoded item

The page is the contract, so nothing here restates it: the schema is the
concatenation of the page's fenced `cddl` blocks, parsed the way the `zcbor
validate` command parses a file (with zcbor's copy of the RFC 8610 prelude).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import cbor2
from zcbor.zcbor.zcbor import PRELUDE_PATH, CddlValidationError, DataTranslator  # type: ignore[import-untyped]

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAMES_MD = REPO_ROOT / "docs" / "frames.md"
# what `zcbor validate` uses when --default-max-qty is not given: `*` and `+` unbounded
_DEFAULT_MAX_QTY = 0xFFFFFFFF
_CDDL_BLOCK = re.compile(r"^```cddl\n(.*?)^```", re.S | re.M)


def cddl_blocks(markdown: str) -> list[str]:
    """The contents of the fenced ```cddl blocks of a Markdown page, in order."""
    return _CDDL_BLOCK.findall(markdown)


def cddl_source(path: Path = FRAMES_MD) -> str:
    """The page's CDDL as one schema text (what `zcbor validate -c` would be given)."""
    blocks = cddl_blocks(path.read_text(encoding="utf-8"))
    if not blocks:
        raise ValueError(f"{path} has no ```cddl blocks")
    return "\n".join(blocks)


class Schema:
    """A parsed schema: `valid(rule, item)` checks a decoded CBOR item,
    `valid_cbor(rule, data)` encoded CBOR."""

    def __init__(self, source: str) -> None:
        prelude = PRELUDE_PATH.read_text(encoding="utf-8")
        self.rules: dict[str, Any] = DataTranslator.from_cddl(source + "\n" + prelude,
                                                              _DEFAULT_MAX_QTY).my_types

    def valid(self, rule: str, item: Any) -> bool:
        """Whether the decoded CBOR `item` matches `rule`. Only zcbor's verdict
        "does not match" is False; any other failure raises."""
        # zcbor prints the alternatives it tried to stdout before raising; keep test output clean
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                self.rules[rule].validate_obj(item)
            except CddlValidationError:
                return False
        return True

    def valid_cbor(self, rule: str, data: bytes) -> bool:
        """Whether the CBOR bytes `data` (one item) match `rule`."""
        return self.valid(rule, cbor2.loads(data))


def load_schema(path: Path = FRAMES_MD) -> Schema:
    return Schema(cddl_source(path))
