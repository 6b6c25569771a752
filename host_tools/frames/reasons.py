"""The wire constants of docs/frames.md, the reason codes (Reason, FrameError) and the
frame types, with the names people read for codes."""

from __future__ import annotations

from enum import Enum, IntEnum

from host_tools.errors import SottoError, UsageError

FORMAT_VERSION = 1
MAX_FRAME_BYTES = 64 * 1024     # the receiver's limit (`too-large`)
MAX_DEPTH = 16                  # containers and tags; a frame needs 4
MAX_FUTURE_S = 300              # `time-in-future` beyond the receiver's clock + 5 min
COSE_SIGN1_TAG = 18
ALG_EDDSA = -8                  # what devices emit
ALG_ED25519 = -19               # RFC 9864, fully specified Ed25519; accepted too
ACCEPTED_ALGS = (ALG_EDDSA, ALG_ED25519)
HEADER_ALG = 1
HEADER_KID = 4
KID_BYTES = 8
LINK_BYTES = 8
SIGNATURE_BYTES = 64
LOCATION_BYTES = 13

_U32 = 0xFFFFFFFF


class Reason(str, Enum):
    """Why a frame was rejected: the reason codes of docs/frames.md."""

    MALFORMED_CBOR = "malformed-cbor"
    NOT_COSE_SIGN1 = "not-cose-sign1"
    BAD_PROTECTED_HEADER = "bad-protected-header"
    UNSUPPORTED_ALG = "unsupported-alg"
    MISSING_KID = "missing-kid"
    UNKNOWN_DEVICE = "unknown-device"
    REVOKED_DEVICE = "revoked-device"
    BAD_SIGNATURE = "bad-signature"
    AUDIO_MISSING = "audio-missing"
    AUDIO_UNEXPECTED = "audio-unexpected"
    AUDIO_DIGEST_MISMATCH = "audio-digest-mismatch"
    UNSUPPORTED_VERSION = "unsupported-version"
    UNKNOWN_FRAME_TYPE = "unknown-frame-type"
    MISSING_FIELD = "missing-field"
    BAD_FIELD = "bad-field"
    TIME_IN_FUTURE = "time-in-future"
    TOO_LARGE = "too-large"

    def __str__(self) -> str:
        return self.value


class FrameError(SottoError, ValueError):
    """A frame that cannot be accepted: `reason` (a Reason) and a `detail` for people."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class KeyFormatError(UsageError):
    """A public key given in a form this tool cannot read."""


class FrameType(IntEnum):
    """Frame types (`t`)."""

    ALERT_START = 1
    LOCATION = 2
    AUDIO = 3
    CANCEL = 4
    DURESS = 5
    END = 6
    HEARTBEAT = 7
    CHECK_IN = 8
    STATUS = 9
    REPLY = 10

    @property
    def label(self) -> str:
        """The name docs/frames.md uses: `alert-start`, `check-in`, ..."""
        return self.name.lower().replace("_", "-")

    @property
    def article(self) -> str:
        """`a check-in`, `an alert-start`: for messages."""
        return ("an " if self.label[0] in "aeiou" else "a ") + self.label

    @property
    def in_alert(self) -> bool:
        """Alert frames carry `sid` and belong to one alert."""
        return self <= FrameType.END


SOURCE_NAMES = {1: "gnss", 2: "cell", 3: "last-known"}
TRIGGER_NAMES = {1: "hold", 2: "presses", 3: "check-in-overdue", 4: "no-motion", 5: "man-down"}
CODEC_NAMES = {1: "IMA-ADPCM"}
FLAG_NAMES = {0: "duress", 1: "minimal mode", 2: "battery reserve", 3: "insecure-tls", 4: "pre-trigger",
              5: "config-invalid"}
FLAG_INSECURE_TLS = 8           # bit 3: the device runs TLS without server authentication
FLAG_PRE_TRIGGER = 16           # bit 4: audio captured before the trigger (the device's RAM ring)
FLAG_CONFIG_INVALID = 32        # bit 5: status/heartbeat of a device running on a config fallback
FLAGS_DEFINED = 0x3F            # bits 0..5; an undefined bit is a format change (bad-field)
STATUS_NAMES = {1: "battery low", 2: "battery critical", 3: "battery reserve reached",
                4: "boot loop: minimal alert-only mode", 5: "queue full, frames dropped",
                6: "device started", 7: "health report (configuration applied or refused)",
                8: "config invalid: running on config.good or built-in defaults",
                9: "receiver down: the receiver rx has stopped answering",
                10: "not through: the alert-start was not acknowledged in time",
                11: "update"}
ST_HEALTH = 7
ST_CONFIG_INVALID = 8
ST_UPDATE = 11
# status `upd` (key 36): the result of the device's last update (docs/ota.md)
UPDATE_RESULT_NAMES = {1: "applied", 2: "rolled back", 3: "staged", 4: "refused: signature",
                       5: "refused: version", 6: "refused: board", 7: "refused: file digest",
                       8: "flash", 9: "centre could not give it"}
RESET_CAUSE_NAMES = {0: "unknown", 1: "power-on", 2: "hard reset", 3: "watchdog", 4: "deep sleep",
                     5: "soft reset", 6: "brownout"}
TEXT_MAX_BYTES = {24: 32, 35: 32, 37: 64}   # fw, pend, err: UTF-8 text of at most this many bytes
# `rx` (key 34): which receiver of the second path (EN 50136 dual path)
RECEIVER_NAMES = {0: "primary", 1: "secondary"}
# reply `res` (key 22): the device's result of a centre command
REPLY_RESULT_NAMES = {1: "done", 2: "refused", 3: "yes", 4: "no", 5: "no answer", 6: "unknown command",
                      7: "invalid"}
COMMAND_ID_MAX = 2**53
END_REASON_NAMES = {1: "ended on the device", 2: "closed by the monitoring centre",
                    3: "maximum duration", 4: "battery exhausted"}
ALG_NAMES = {ALG_EDDSA: "EdDSA", ALG_ED25519: "Ed25519"}
