"""What the technician tools say about the configuration found on a device.

`sotto flash`, `sotto provision` and `sotto rotate-key` read /data/config.json and
name what they find: missing (never provisioned, or /data erased), corrupt (the
file is there but cannot be read: the device then runs on its last good
configuration, config.good, or built-in defaults, and reports config-invalid to
the centre), or provisioned as a device id. "corrupt" is never called
"missing": a damaged file on a provisioned unit is a different fault from a new
unit (issue 16)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from host_tools.errors import UsageError
from host_tools.ids import format_device_id, parse_device_id

CONFIG_PATH = "/data/config.json"


@dataclass(frozen=True)
class ConfigState:
    state: str            # "missing", "corrupt" or "ok"
    device_id: str | None  # as people write it, when "ok"
    detail: str           # one sentence for the technician

    def to_json(self) -> dict[str, object]:
        return {"state": self.state, "device_id": self.device_id, "detail": self.detail}


_CORRUPT_TAIL = ("the device runs on its last good configuration (config.good) or built-in defaults "
                 "and reports config-invalid; provision it again with `sotto provision` "
                 "(add --force when it still has its key)")


def describe(raw: bytes | str | None) -> ConfigState:
    """Classify config.json's content (None: the file is absent)."""
    if raw is None:
        return ConfigState("missing", None, "no configuration (config.json is missing): the device is not "
                                            "provisioned yet; run `sotto provision`")
    try:
        cfg = json.loads(raw)
    except ValueError:   # also UnicodeDecodeError
        return ConfigState("corrupt", None, "a CORRUPT configuration (config.json is not valid JSON); "
                                            + _CORRUPT_TAIL)
    if not isinstance(cfg, dict):
        return ConfigState("corrupt", None, "a CORRUPT configuration (config.json is not a JSON object); "
                                            + _CORRUPT_TAIL)
    value = cfg.get("device_id")
    try:
        name = format_device_id(parse_device_id(value)) if isinstance(value, str) else None
    except UsageError:
        name = None
    if name is None:
        return ConfigState("corrupt", None, "a CORRUPT configuration (config.json names no valid device id); "
                                            + _CORRUPT_TAIL)
    return ConfigState("ok", name, f"provisioned as {name}")
