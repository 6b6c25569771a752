# Golden vector generator: turns tests/vectors/NAME.json (the inputs) into the
# frame's exact wire bytes with the firmware's own code (sotto.frames).
#
# `make vectors` (tools/make_vectors.py) runs this file inside the MicroPython
# VM: it reads /vectors/*.json and writes /out/NAME.cbor. tests/test_vectors.py
# imports the same functions under CPython to check both give the same bytes.
# MicroPython and CPython alike: only json, os, binascii and the firmware.
import binascii
import json
import os

from sotto import ed25519, frames

# field names of docs/frames.md -> payload keys (v and adig are the signer's)
FIELD_KEYS = {
    "t": frames.K_T, "sid": frames.K_SID, "seq": frames.K_SEQ, "time": frames.K_TIME,
    "up": frames.K_UP, "loc": frames.K_LOC, "batt": frames.K_BATT, "prev": frames.K_PREV,
    "trig": frames.K_TRIG, "flags": frames.K_FLAGS, "codec": frames.K_CODEC,
    "rate": frames.K_RATE, "off": frames.K_OFF, "ast": frames.K_AST, "ns": frames.K_NS,
    "hb": frames.K_HB, "st": frames.K_ST, "drop": frames.K_DROP, "why": frames.K_WHY,
    "cmd": frames.K_CMD, "res": frames.K_RES, "unauth": frames.K_UNAUTH,
    "fw": frames.K_FW, "cfgv": frames.K_CFGV, "rst": frames.K_RST, "boots": frames.K_BOOTS,
    "faults": frames.K_FAULTS, "qd": frames.K_QD, "csq": frames.K_CSQ, "err": frames.K_ERR,
    "pend": frames.K_PEND, "upd": frames.K_UPD,
    "rx": frames.K_RX,
    "visit": frames.K_VISIT, "due": frames.K_DUE, "dur": frames.K_DUR,
}
KINDS = {
    "alert-start": frames.ALERT_START, "location": frames.LOCATION, "audio": frames.AUDIO,
    "cancel": frames.CANCEL, "duress": frames.DURESS, "end": frames.END,
    "heartbeat": frames.HEARTBEAT, "check-in": frames.CHECK_IN, "status": frames.STATUS,
    "reply": frames.REPLY,
}


def unhex(text):
    return binascii.unhexlify(text)


def payload_fields(spec):
    """The payload map (without v and adig) a vector's json describes."""
    fields = {}
    for name, value in spec["fields"].items():
        key = FIELD_KEYS[name]
        if name == "loc":
            value = frames.pack_location(value["lat_e7"], value["lon_e7"], value["acc_m"],
                                         value["age_s"], value["source"])
        elif name == "prev":
            value = unhex(value)
        fields[key] = value
    if fields.get(frames.K_T) != KINDS[spec["kind"]]:
        raise ValueError("%s: fields.t does not match kind" % spec["kind"])
    return fields


_signers = {}


def frame_from_spec(spec):
    """The wire bytes of one vector, signed by sotto.frames.FrameSigner."""
    seed = spec["seed"]
    signer = _signers.get(seed)
    if signer is None:
        signer = frames.FrameSigner(unhex(spec["kid"]), ed25519.SigningKey(unhex(seed)))
        _signers[seed] = signer
    audio = spec.get("audio")
    return signer.sign(payload_fields(spec), audio=None if audio is None else unhex(audio))


def generate(in_dir, out_dir):
    """Write out_dir/NAME.cbor for every in_dir/NAME.json; return the names."""
    names = sorted(n[:-5] for n in os.listdir(in_dir) if n.endswith(".json"))
    for name in names:
        with open(in_dir + "/" + name + ".json") as f:
            spec = json.load(f)
        wire = frame_from_spec(spec)
        with open(out_dir + "/" + name + ".cbor", "wb") as f:
            f.write(wire)
    return names


if __name__ == "__main__":
    for done in generate("/vectors", "/out"):
        print(done)
