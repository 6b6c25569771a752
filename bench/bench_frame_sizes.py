"""Wire size of each frame kind, from the golden vectors in tests/vectors/.

Frames that must or may go by SMS (location, alert-start, ...) are set against
the 140-byte binary SMS limit (ratio above 1: fits, with room to spare); the
audio frame against the audio bytes it carries (ratio just under 1: the
envelope's overhead).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import Row, lower_is_better

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors"
SMS_LIMIT_BYTES = 140


def run() -> list[Row]:
    rows = []
    for spec_path in sorted(VECTORS.glob("*.json")):
        spec = json.loads(spec_path.read_text())
        size = len(spec_path.with_suffix(".cbor").read_bytes())
        name = f"wire size: {spec_path.stem}"
        if "audio" in spec:
            audio = len(bytes.fromhex(spec["audio"]))
            rows.append(lower_is_better(name, size, "bytes", audio,
                                        note=f"baseline: the {audio} audio bytes it carries"))
        else:
            target = "<= 140 (one SMS)" if spec["kind"] == "location" else ""
            rows.append(lower_is_better(name, size, "bytes", SMS_LIMIT_BYTES, target=target,
                                        note="baseline: the 140-byte SMS limit"))
    return rows
