"""Sotto frames on the host: decode with cbor2, verify with cryptography.

docs/frames.md is the contract. This package shares no code with the firmware:
it is the independent implementation the receiver, `sotto frame` and the
evidence verifier trust.

    frame = decode_frame(wire)                 # structure and schema; raises FrameError
    verdict = verify_frame(wire, public_key)   # Verdict(ok, reason, detail, frame)

Decoding is fail-closed and safe on hostile bytes: before cbor2 sees anything,
a strict scanner checks that the bytes are well-formed CBOR in the core
deterministic encoding of RFC 8949 §4.2 (shortest heads, definite lengths,
sorted unique map keys, no floats, valid UTF-8), that lengths fit the buffer,
that nesting stays shallow and that no tag other than 18 appears (cbor2 gives
many tags a meaning of its own, none of which a frame uses). Every failure is a
FrameError carrying one of the reason codes of docs/frames.md.

Inside: reasons (constants, Reason, FrameError, FrameType), cbor_strict (the
scanner, split_sequence), schema (fields, Location), frame (Frame, decode_frame),
verify (verify_frame), keys (load_public_key), describe (for people and JSON).
"""

from host_tools.frames.cbor_strict import SequenceTooLong, split_sequence
from host_tools.frames.describe import describe_frame, frame_summary, frame_to_json
from host_tools.frames.frame import Frame, chain_link, decode_frame
from host_tools.frames.keys import load_public_key, public_key_bytes
from host_tools.frames.reasons import (
    ACCEPTED_ALGS,
    ALG_ED25519,
    ALG_EDDSA,
    ALG_NAMES,
    CODEC_NAMES,
    COMMAND_ID_MAX,
    COSE_SIGN1_TAG,
    END_REASON_NAMES,
    FLAG_CONFIG_INVALID,
    FLAG_INSECURE_TLS,
    FLAG_NAMES,
    FLAG_PRE_TRIGGER,
    FLAGS_DEFINED,
    FORMAT_VERSION,
    HEADER_ALG,
    HEADER_KID,
    KID_BYTES,
    LINK_BYTES,
    LOCATION_BYTES,
    MAX_DEPTH,
    MAX_FRAME_BYTES,
    MAX_FUTURE_S,
    RECEIVER_NAMES,
    REPLY_RESULT_NAMES,
    RESET_CAUSE_NAMES,
    SIGNATURE_BYTES,
    SOURCE_NAMES,
    ST_CONFIG_INVALID,
    ST_HEALTH,
    STATUS_NAMES,
    TRIGGER_NAMES,
    FrameError,
    FrameType,
    KeyFormatError,
    Reason,
)
from host_tools.frames.schema import Location, unpack_location
from host_tools.frames.verify import KeySource, PublicKey, Verdict, verify_frame

__all__ = [
    "ACCEPTED_ALGS", "ALG_ED25519", "ALG_EDDSA", "ALG_NAMES", "CODEC_NAMES", "COSE_SIGN1_TAG",
    "COMMAND_ID_MAX", "END_REASON_NAMES", "FLAGS_DEFINED", "FLAG_CONFIG_INVALID", "FLAG_INSECURE_TLS",
    "FLAG_NAMES", "FLAG_PRE_TRIGGER", "RESET_CAUSE_NAMES", "ST_CONFIG_INVALID", "ST_HEALTH",
    "FORMAT_VERSION", "HEADER_ALG", "HEADER_KID", "KID_BYTES",
    "LINK_BYTES", "LOCATION_BYTES", "MAX_DEPTH", "MAX_FRAME_BYTES", "MAX_FUTURE_S", "SIGNATURE_BYTES",
    "RECEIVER_NAMES", "REPLY_RESULT_NAMES", "SOURCE_NAMES", "STATUS_NAMES", "TRIGGER_NAMES", "Frame",
    "FrameError", "FrameType", "KeyFormatError",
    "KeySource", "Location", "PublicKey", "Reason", "Verdict", "chain_link", "decode_frame",
    "describe_frame", "frame_summary", "frame_to_json", "load_public_key", "public_key_bytes",
    "SequenceTooLong", "split_sequence", "unpack_location", "verify_frame",
]
