# The device configuration: /data/config.json, written by `sotto provision`,
# checked here at every boot. Missing or wrong fields give a ConfigError that
# names the field and says what to do; everything optional has a default.
# `sotto provision` runs validate() on the device itself, so host and device
# apply the very same rules.
import json

from sotto import edwards

CONFIG = "config.json"
GOOD = "config.good"  # the last configuration that loaded: the fallback when config.json is not
CA_MAX_BYTES = 10240  # what AT+CCERTDOWN takes

DEFAULTS = {
    "officer": None,
    "board": "sotto-ref-s3",
    "sms_number": None,
    "ca_cert": None,
    "centre_key": None,
    "insecure_tls": False,
    "version": 0,  # the configuration version the centre gave (`sotto devices config`)
    # the second path (EN 50136 DP): another centre's receiver, its CA file and
    # its answer-signing key; sotto.paths switches to it and back
    "secondary_receiver": None,
    "secondary_ca_cert": None,
    "secondary_centre_key": None,
    # production units: Ctrl-C cannot stop the firmware, so nobody reaches the
    # REPL over USB (sotto.hal.lock_repl, from boot.py); docs/technician-guide.md
    "repl_lock": False,
    "trigger": {
        "alert": {"hold_ms": 3000},
        "cancel": {"presses": 3, "window_ms": 2000},
        "duress": {"presses": 5, "window_ms": 2500},
        "yes": {"presses": 2, "window_ms": 1500},  # answers to the centre's `ask`
        "no": {"presses": 4, "window_ms": 2500},
        "cancel_window_s": 120,
        "debounce_ms": 20,
        "haptic": True,
    },
    # pre_trigger: keep the last pre_s seconds in RAM (never on flash) and send
    # them as the first chunks of an alert; off unless the centre turns it on
    "audio": {"clip_s": 30, "chunk_ms": 1000, "rate_hz": 8000, "max_clip_s": 120,
              "pre_trigger": False, "pre_s": 10},
    "location_every_s": 15,
    "gnss_keep_on_s": 600,
    "alert_max_s": 3600,
    "heartbeat_every_s": 900,
    "battery": {"low_pct": 20, "critical_pct": 10, "reserve_pct": 5},
    "delivery": {"sms_after_s": 30, "sms_every_s": 120, "secondary_after_s": 60, "probe_s": 300},
    "queue_max_bytes": 262144,
    # over-the-air updates (docs/ota.md): the release key's public half (hex; None:
    # no updates), how long a new release has to get an authenticated answer
    # before it is rolled back, the bytes of one download chunk
    "release_key": None,
    "ota": {"health_s": 600, "chunk_bytes": 2048},
    # covert wrist feedback, on/off/on... ms (sotto.feedback); every pattern is
    # told apart from the others and from the "pattern accepted" pulse by its
    # shape (how many pulses, which are long)
    "feedback": {
        "enabled": True,
        "received": [400],
        "listening": [120, 150, 120, 150, 120],
        "not_through": [600, 250, 600],
        "not_through_s": 20,
        "ask_timeout_s": 60,
        "questions": [[100, 150, 100, 150, 500], [500, 150, 100, 150, 100]],
    },
    # timed check-in (sotto.checkin): off until enabled per device; its press
    # patterns are recognised only then; its haptic answers (on/off/on... ms)
    # feel different from every other pattern
    "checkin": {
        "enabled": False,
        "minutes": 30,  # a visit's length from the start pattern
        "extend_minutes": 15,  # what the extend pattern adds from now
        "remind_min": 5,  # the reminder this long before the end (0: none)
        "start": {"presses": 6, "window_ms": 3000},
        "extend": {"presses": 7, "window_ms": 3500},
        "end": {"presses": 8, "window_ms": 4000},
        "started": [100, 150, 400, 150, 400],
        "extended": [400, 150, 400, 150, 100],
        "ended": [100, 150, 100, 150, 100, 150, 100],
        "reminder": [400, 200, 400, 200, 400],
    },
    # man-down and no-motion (sotto.motion), both off until enabled per device;
    # they need a board with an accelerometer (hardware/boards, "accel")
    "motion": {
        "no_motion": False,
        "no_motion_s": 120,  # still this long: pre-alarm
        "man_down": False,
        "man_down_still_s": 10,  # free-fall, impact, then still this long: pre-alarm
        "pre_alarm_s": 30,  # the cancel window before the alert
        "pre_alarm_every_s": 10,  # the pre-alarm pattern again this often
        "pre_alarm": [800, 200, 100, 200, 800],
    },
}
# dicts taken whole from the given configuration (patterns), not merged key by key
_WHOLE = ("checkin.start", "checkin.extend", "checkin.end")
REQUIRED = ("device_id", "receiver", "apn")
# identity, trust anchors and where alerts go: `sotto provision` only, never a
# remote change (a stolen centre database must not redirect a device)
LOCKED = ("device_id", "receiver", "apn", "sms_number", "ca_cert", "centre_key", "insecure_tls",
          "board", "version", "release_key", "secondary_receiver", "secondary_ca_cert",
          "secondary_centre_key", "repl_lock")
# what a configuration that cannot be read keeps from an older one, if it can
ESSENTIAL = REQUIRED + ("officer", "board", "sms_number", "ca_cert", "centre_key", "insecure_tls",
                        "release_key", "secondary_receiver", "secondary_ca_cert", "secondary_centre_key")
VERSION_MAX = 0x3FFFFFFF
# integer fields: (min, max)
_RANGES = {
    "trigger.cancel_window_s": (5, 3600), "trigger.debounce_ms": (5, 200),
    "audio.clip_s": (0, 600), "audio.chunk_ms": (250, 2000), "audio.rate_hz": (8000, 8000),
    "location_every_s": (5, 3600), "gnss_keep_on_s": (0, 86400), "alert_max_s": (60, 86400),
    "heartbeat_every_s": (60, 86400), "battery.low_pct": (1, 100),
    "battery.critical_pct": (1, 100), "battery.reserve_pct": (0, 100),
    "delivery.sms_after_s": (5, 3600), "delivery.sms_every_s": (30, 86400),
    "delivery.secondary_after_s": (10, 3600), "delivery.probe_s": (30, 86400),
    "queue_max_bytes": (32768, 4194304), "audio.max_clip_s": (0, 600),
    "feedback.not_through_s": (5, 600), "feedback.ask_timeout_s": (10, 600),
    "version": (0, VERSION_MAX), "audio.pre_s": (1, 30),
    "ota.health_s": (60, 86400), "ota.chunk_bytes": (256, 3072),
    "checkin.minutes": (1, 720), "checkin.extend_minutes": (1, 720), "checkin.remind_min": (0, 60),
    "motion.no_motion_s": (30, 3600), "motion.man_down_still_s": (3, 120),
    "motion.pre_alarm_s": (5, 300), "motion.pre_alarm_every_s": (2, 60),
}
_PATTERN_RANGES = {"hold_ms": (500, 20000), "presses": (2, 10), "window_ms": (300, 10000)}


class ConfigError(ValueError):
    """A configuration the device cannot run with. `field` is the dotted name,
    `reason` one of missing, type, range, unknown-field, corrupt, insecure,
    locked (a remote change to a setting only `sotto provision` may set)."""

    def __init__(self, field, reason, msg):
        super().__init__("config %s: %s (run `sotto provision` again to fix it)" % (field, msg))
        self.field = field
        self.reason = reason
        self.detail = msg

    def short(self, limit=64):
        """`field: what is wrong`, at most `limit` bytes (frame key err)."""
        text = "%s: %s" % (self.field, self.detail)
        if len(text.encode()) <= limit:
            return text
        text = text[:limit - 3]
        while len(text.encode()) > limit - 3:  # multi-byte characters
            text = text[:-1]
        return text + "..."


def load(storage):
    """The validated configuration from flash, with defaults filled in."""
    return validate(read_obj(storage), storage)


def read_obj(storage, name=CONFIG):
    """The JSON object in `name`; ConfigError (missing, corrupt) otherwise."""
    raw = storage.read(name)
    if raw is None:
        raise ConfigError(name, "missing", "no configuration on the device")
    try:
        obj = json.loads(raw)
    except ValueError:
        raise ConfigError(name, "corrupt", "not valid JSON") from None
    return obj


def fallback(storage):
    """(cfg, obj) to run with when config.json does not load: config.good
    whole, else the essentials (identity, receiver, trust anchors, then the
    trigger patterns if they still pass) of config.json or config.good over
    the built-in defaults. ConfigError if neither names the device."""
    try:
        obj = read_obj(storage, GOOD)
        return validate(obj, storage), obj
    except ConfigError:
        pass
    last = None
    for name in (CONFIG, GOOD):
        try:
            src = read_obj(storage, name)
        except ConfigError as e:
            last = e
            continue
        if not isinstance(src, dict):
            continue
        base = {}
        for k in ESSENTIAL:
            if k in src:
                base[k] = src[k]
        for extra in ("trigger", None):
            obj = dict(base)
            if extra is not None and extra in src:
                obj[extra] = src[extra]
            try:
                return validate(obj, storage), obj
            except ConfigError as e:
                last = e
    raise last if last is not None else ConfigError(CONFIG, "missing", "no configuration on the device")


def change(obj, settings, version, storage=None):
    """(cfg, new obj): the configuration object `obj` with `settings` (a map
    of dotted name -> value, e.g. {"heartbeat_every_s": 600}) applied and
    `version` recorded, checked by validate() exactly as at boot. ConfigError
    (field, reason) for a setting that is not one, is locked (identity and
    trust anchors: `sotto provision` only) or does not pass."""
    if type(version) is not int or not 1 <= version <= VERSION_MAX:
        raise ConfigError("version", "range", "must be 1..%d" % VERSION_MAX)
    if not isinstance(settings, dict) or not settings:
        raise ConfigError("set", "type", "must be a map of at least one setting")
    new = json.loads(json.dumps(obj))  # a deep copy: obj stays as it was
    for name, value in settings.items():
        if not isinstance(name, str) or not name:
            raise ConfigError("set", "type", "setting names are text")
        parts = name.split(".")
        if parts[0] in LOCKED:
            raise ConfigError(name, "locked", "identity and trust anchors change only by `sotto provision`")
        node = new  # type: dict
        d = DEFAULTS  # type: object
        for p in parts[:-1]:
            if not isinstance(d, dict) or p not in d or not isinstance(d[p], dict):
                raise ConfigError(name, "unknown-field", "not a setting (misspelt?)")
            d = d[p]
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        if not isinstance(d, dict) or parts[-1] not in d:
            raise ConfigError(name, "unknown-field", "not a setting (misspelt?)")
        node[parts[-1]] = value
    new["version"] = version
    return validate(new, storage), new


def boot_load(storage, err_bytes=64):
    """(cfg, obj, why) at boot: config.json, kept as config.good when it
    loads (why None); else fallback() with why = the short reason. Raises
    the ConfigError of config.json only when nothing names the device."""
    try:
        obj = read_obj(storage)
        cfg = validate(obj, storage)
    except ConfigError as e:
        why = e.short(err_bytes)
        try:
            cfg, obj = fallback(storage)
        except ConfigError:
            raise e from None
        return cfg, obj, why
    try:
        data = json.dumps(obj).encode()
        if storage.read(GOOD) != data:
            storage.write_atomic(GOOD, data)
    except OSError:
        pass  # config.good is a spare: the device runs without it
    return cfg, obj, None


def apply_change(storage, obj, settings, version, current):
    """(cfg, new obj) of a remote change (change()) to a version above
    `current`, written atomically as config.json and kept as config.good.
    ConfigError if refused; OSError if the flash refused it (config.json is
    then either the old file or the new one, never a mix)."""
    if type(version) is int and version <= current:
        raise ConfigError("version", "range", "%d is not above the applied %d" % (version, current))
    cfg, new = change(obj, settings, version, storage)
    data = json.dumps(new).encode()
    storage.write_atomic(CONFIG, data)  # a new file, then a rename
    storage.write_atomic(GOOD, data)
    return cfg, new


def validate(obj, storage=None, strict=False):
    """The configuration with defaults filled in; ConfigError if it is not
    one. With strict (what `sotto provision` runs on the device), a
    configuration that could not deliver over the network (network_refusal)
    is refused too; at boot it is not: such a device still raises and queues
    alerts (and sends them by SMS), and reports why it delivers nothing else."""
    if not isinstance(obj, dict):
        raise ConfigError(CONFIG, "type", "must be a JSON object")
    for name in REQUIRED:
        if name not in obj or obj[name] in (None, ""):
            raise ConfigError(name, "missing", "required and not set")
    cfg = _merge(DEFAULTS, obj, "")
    cfg["device_id"] = _device_id(obj["device_id"])
    cfg["receiver"], cfg["server"] = obj["receiver"], _receiver(obj["receiver"])
    apn = obj["apn"]
    if not isinstance(apn, str):
        raise ConfigError("apn", "type", "must be text")
    # it goes into an AT command in quotes: 3GPP TS 23.003 labels only
    if len(apn) > 100 or not _only(apn.lower(), _HOST + "_"):
        raise ConfigError("apn", "range", "must be letters, digits, '.', '-' or '_' (at most 100)")
    for name in ("officer", "sms_number", "ca_cert", "centre_key"):
        if cfg[name] is not None and not isinstance(cfg[name], str):
            raise ConfigError(name, "type", "must be text or null")
    c = cfg["ca_cert"]
    if c is not None and (not c or "/" in c or c[0] == "." or c == CONFIG):
        raise ConfigError("ca_cert", "range", "must be a file name under /data, e.g. ca.pem")
    n = cfg["sms_number"]
    if n is not None and not (n[:1] == "+" and 6 <= len(n) <= 16 and n[1:].isdigit()):
        raise ConfigError("sms_number", "range", "must be international, e.g. +447700900123")
    if cfg["centre_key"] is not None:
        cfg["centre_key"] = _centre_key(cfg["centre_key"])
    if cfg["release_key"] is not None:
        cfg["release_key"] = _centre_key(cfg["release_key"], "release_key", "sotto release keygen")
    _secondary(cfg)
    if not isinstance(cfg["insecure_tls"], bool):
        raise ConfigError("insecure_tls", "type", "must be true or false")
    if cfg["insecure_tls"] and c is not None:
        raise ConfigError("insecure_tls", "range", "set together with ca_cert: keep only ca_cert")
    if not isinstance(cfg["repl_lock"], bool):
        raise ConfigError("repl_lock", "type", "must be true or false")
    for dotted, (lo, hi) in _RANGES.items():
        _int_in(cfg, dotted, lo, hi)
    if not isinstance(cfg["audio"]["pre_trigger"], bool):
        raise ConfigError("audio.pre_trigger", "type", "must be true or false")
    if cfg["audio"]["clip_s"] > cfg["audio"]["max_clip_s"]:
        raise ConfigError("audio.max_clip_s", "range", "must be at least audio.clip_s")
    _patterns(cfg["trigger"])
    _feedback(cfg["feedback"])
    _checkin_motion(cfg)
    b = cfg["battery"]
    if not b["reserve_pct"] < b["critical_pct"] < b["low_pct"]:
        raise ConfigError("battery", "range", "need reserve_pct < critical_pct < low_pct")
    if strict:
        refusal = network_refusal(cfg, storage)
        if refusal is None:
            refusal = secondary_refusal(cfg, storage)
        if refusal is not None:
            raise refusal
    return cfg


def _secondary(cfg):
    # the second receiver: the same rules as the first, under its own names
    url = cfg["secondary_receiver"]
    for name in ("secondary_ca_cert", "secondary_centre_key"):
        v = cfg[name]
        if v is not None and not isinstance(v, str):
            raise ConfigError(name, "type", "must be text or null")
        if v is not None and url is None:
            raise ConfigError(name, "range", "set without secondary_receiver")
    cfg["secondary"] = None
    if url is None:
        return
    cfg["secondary"] = _receiver(url, "secondary_receiver")
    c = cfg["secondary_ca_cert"]
    if c is not None and (not c or "/" in c or c[0] == "." or c == CONFIG):
        raise ConfigError("secondary_ca_cert", "range", "must be a file name under /data, e.g. ca2.pem")
    if cfg["secondary_centre_key"] is not None:
        cfg["secondary_centre_key"] = _centre_key(cfg["secondary_centre_key"], "secondary_centre_key")


def secondary_refusal(cfg, storage=None):
    """Why the secondary receiver must not be used (a ConfigError, not
    raised), or None (also when there is none). The same rules as
    network_refusal(): its own centre key, a CA for TLS, http only to a
    loopback address."""
    srv = cfg.get("secondary")
    if srv is None:
        return None
    if cfg["secondary_centre_key"] is None:
        return ConfigError("secondary_centre_key", "missing", "the secondary centre's answer-signing "
                           "key is not set: its answers could not be authenticated")
    if not srv["tls"]:
        if not _loopback(srv["host"]):
            return ConfigError("secondary_receiver", "insecure", "http:// only to a loopback address")
        return None
    ca = cfg["secondary_ca_cert"]
    if ca is None:
        if cfg["insecure_tls"]:
            return None
        return ConfigError("secondary_ca_cert", "missing", "TLS needs the secondary centre's CA certificate")
    if storage is not None:
        size = storage.size(ca) if storage.exists(ca) else -1
        if size <= 0:
            return ConfigError("secondary_ca_cert", "missing", "no file %s on the device" % ca)
        if size > CA_MAX_BYTES:
            return ConfigError("secondary_ca_cert", "range", "%s is over %d bytes" % (ca, CA_MAX_BYTES))
    return None


def network_refusal(cfg, storage=None):
    """Why this configuration must not deliver over the network (a
    ConfigError, not raised), or None. Without the centre's key no answer can
    be authenticated; TLS without a CA does not know whom it talks to (unless
    insecure_tls, for bench work); plain http only stays on this machine."""
    srv = cfg["server"]
    if cfg["centre_key"] is None:
        return ConfigError("centre_key", "missing", "the centre's answer-signing key is not set: "
                           "nothing goes over the network without it")
    if not srv["tls"]:
        if not _loopback(srv["host"]):
            return ConfigError("receiver", "insecure", "http:// only to a loopback address; use https://")
        return None
    ca = cfg["ca_cert"]
    if ca is None:
        if cfg["insecure_tls"]:
            return None
        return ConfigError("ca_cert", "missing",
                           "TLS needs the centre's CA certificate (insecure_tls: true only for bench work)")
    if storage is not None:
        size = storage.size(ca) if storage.exists(ca) else -1
        if size <= 0:
            return ConfigError("ca_cert", "missing", "no file %s on the device" % ca)
        if size > CA_MAX_BYTES:
            return ConfigError("ca_cert", "range", "%s is over %d bytes" % (ca, CA_MAX_BYTES))
    return None


def _loopback(host):
    if host == "localhost" or host == "::1":
        return True
    parts = host.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256 for p in parts)


def _centre_key(v, field="centre_key", where="sotto centre key"):
    if not isinstance(v, str) or len(v) != 64 or not _only(v.lower(), _HEX):
        raise ConfigError(field, "type", "must be 64 hex digits (`%s` prints it)" % where)
    key = bytes.fromhex(v)
    if edwards.decode(key) is None:
        raise ConfigError(field, "range", "is not an Ed25519 public key")
    return key


# haptic patterns: on, off, on, ... ms
_PULSE_MS = (40, 1500)
_GAP_MS = (80, 1500)
_PATTERN_MAX_MS = 6000
LONG_MS = 250  # an on-pulse this long or longer feels "long"
CONFIRM_SHAPE = "ss"  # sotto.haptic.CONFIRM_MS: the "pattern accepted" pulse


def haptic_shape(pattern):
    """What the wearer tells patterns apart by: "s" or "l" per pulse."""
    return "".join(["l" if pattern[i] >= LONG_MS else "s" for i in range(0, len(pattern), 2)])


def _feedback(fb):
    if not isinstance(fb["enabled"], bool):
        raise ConfigError("feedback.enabled", "type", "must be true or false")
    qs = fb["questions"]
    if not isinstance(qs, list) or not 1 <= len(qs) <= 8:
        raise ConfigError("feedback.questions", "type", "must be a list of 1 to 8 patterns")
    seen = {CONFIRM_SHAPE: "the pattern-accepted pulse"}
    names = ["received", "listening", "not_through"]
    for i in range(len(qs)):
        names.append("questions.%d" % (i + 1))
    for name in names:
        p = qs[int(name[10:]) - 1] if name.startswith("questions.") else fb[name]
        _haptic_pattern("feedback." + name, p)
        shape = haptic_shape(p)
        if shape in seen:
            raise ConfigError("feedback." + name, "range", "feels the same as %s (pulses %s)"
                              % (seen[shape], shape))
        seen[shape] = "feedback." + name


def _haptic_pattern(field, p):
    if not isinstance(p, list) or len(p) % 2 != 1 or len(p) > 15:
        raise ConfigError(field, "type", "must be a list of on, off, on... ms (odd length, at most 15)")
    total = 0
    for i in range(len(p)):
        v = p[i]
        lo, hi = _PULSE_MS if i % 2 == 0 else _GAP_MS
        if type(v) is not int or not lo <= v <= hi:
            raise ConfigError(field, "range", "%r: %s must be %d..%d ms"
                              % (v, "a pulse" if i % 2 == 0 else "a gap", lo, hi))
        total += v
    if total > _PATTERN_MAX_MS:
        raise ConfigError(field, "range", "lasts %d ms, over %d" % (total, _PATTERN_MAX_MS))


def _merge(defaults, given, prefix):
    out = {}
    for k in given:
        if k not in defaults and not (prefix == "" and k in REQUIRED):
            raise ConfigError(prefix + k, "unknown-field", "not a setting (misspelt?)")
    for k, d in defaults.items():
        v = given.get(k, d)
        if prefix + k in _WHOLE:
            out[k] = dict(v) if isinstance(v, dict) else v  # checked by _checkin_motion
        elif isinstance(d, dict):
            if not isinstance(v, dict):
                raise ConfigError(prefix + k, "type", "must be an object")
            # trigger patterns are replaced whole: a hold merged into a burst is nonsense
            out[k] = _merge_trigger(d, v) if k == "trigger" else _merge(d, v, prefix + k + ".")
        else:
            out[k] = v
    for k in REQUIRED:
        if prefix == "" and k in given:
            out[k] = given[k]
    return out


def _merge_trigger(d, v):
    out = {}
    for k in v:
        if k not in d:
            raise ConfigError("trigger." + k, "unknown-field", "not a setting (misspelt?)")
    for k in d:
        p = v.get(k, d[k])
        out[k] = dict(p) if isinstance(p, dict) else p  # never hand out DEFAULTS' own dicts
    return out


def _int_in(cfg, dotted, lo, hi, prefix=""):
    parts = dotted.split(".")
    dotted = prefix + dotted
    node = cfg
    for p in parts[:-1]:
        node = node[p]
    v = node[parts[-1]]
    if type(v) is not int:
        raise ConfigError(dotted, "type", "must be a whole number, not %r" % (v,))
    if not lo <= v <= hi:
        raise ConfigError(dotted, "range", "%d is outside %d..%d" % (v, lo, hi))


def _patterns(trig):
    if not isinstance(trig["haptic"], bool):
        raise ConfigError("trigger.haptic", "type", "must be true or false")
    seen = {}  # type: dict
    for key in ("alert", "cancel", "duress", "yes", "no"):
        p = trig[key]
        name = "trigger." + key
        if not isinstance(p, dict):
            raise ConfigError(name, "type", 'must be {"hold_ms": T} or {"presses": N, "window_ms": W}')
        for k in p:
            if k not in _PATTERN_RANGES:
                raise ConfigError(name + "." + k, "unknown-field", "not a pattern setting (misspelt?)")
        kind = ("hold_ms",) if "hold_ms" in p else ("presses", "window_ms")
        if sorted(p) != sorted(kind):
            raise ConfigError(name, "type", 'must be {"hold_ms": T} or {"presses": N, "window_ms": W}')
        for k in kind:
            lo, hi = _PATTERN_RANGES[k]
            _int_in(trig, key + "." + k, lo, hi, "trigger.")
        sig = "hold" if "hold_ms" in p else p["presses"]
        if sig in seen:
            raise ConfigError(name, "range", "cannot be told apart from trigger.%s" % seen[sig])
        seen[sig] = key


def _checkin_motion(cfg):
    """The check-in and motion settings: switches, press patterns told apart
    from the trigger's, haptic answers told apart from every other pattern."""
    c, m = cfg["checkin"], cfg["motion"]
    for name, v in (("checkin.enabled", c["enabled"]), ("motion.no_motion", m["no_motion"]),
                    ("motion.man_down", m["man_down"])):
        if not isinstance(v, bool):
            raise ConfigError(name, "type", "must be true or false")
    if c["remind_min"] >= c["minutes"]:
        raise ConfigError("checkin.remind_min", "range", "must be less than checkin.minutes")
    trig = cfg["trigger"]
    seen = {}  # type: dict
    for key in ("alert", "cancel", "duress", "yes", "no"):
        seen["hold" if "hold_ms" in trig[key] else trig[key]["presses"]] = "trigger." + key
    for key in ("start", "extend", "end"):
        p = c[key]
        name = "checkin." + key
        if not isinstance(p, dict) or sorted(p) != ["presses", "window_ms"]:
            raise ConfigError(name, "type", 'must be {"presses": N, "window_ms": W}')
        for k in ("presses", "window_ms"):
            lo, hi = _PATTERN_RANGES[k]
            _int_in(c, key + "." + k, lo, hi, "checkin.")
        if c["enabled"] and p["presses"] in seen:  # recognised only when enabled
            raise ConfigError(name, "range", "cannot be told apart from %s" % seen[p["presses"]])
        seen[p["presses"]] = name
    fb = cfg["feedback"]
    shapes = {CONFIRM_SHAPE: "the pattern-accepted pulse"}
    for k in ("received", "listening", "not_through"):
        shapes[haptic_shape(fb[k])] = "feedback." + k
    for i in range(len(fb["questions"])):
        shapes[haptic_shape(fb["questions"][i])] = "feedback.questions.%d" % (i + 1)
    for name, p in (("checkin.started", c["started"]), ("checkin.extended", c["extended"]),
                    ("checkin.ended", c["ended"]), ("checkin.reminder", c["reminder"]),
                    ("motion.pre_alarm", m["pre_alarm"])):
        _haptic_pattern(name, p)
        shape = haptic_shape(p)
        on = c["enabled"] if name[0] == "c" else (m["no_motion"] or m["man_down"])
        if on and shape in shapes:  # felt only when enabled
            raise ConfigError(name, "range", "feels the same as %s (pulses %s)" % (shapes[shape], shape))
        shapes[shape] = name


def _device_id(v):
    if not isinstance(v, str) or len(v) != 16 or not _only(v.lower(), _HEX):
        raise ConfigError("device_id", "type", "must be 16 hex digits, e.g. 00000000000000a7")
    return bytes.fromhex(v)


_HEX = "0123456789abcdef"
_HOST = "abcdefghijklmnopqrstuvwxyz0123456789.-"


def _only(text, allowed):
    for c in text:
        if c not in allowed:
            return False
    return True


def _receiver(url, field="receiver"):
    """(host, port, tls) of "https://host[:port]" or "http://host:port"."""
    if not isinstance(url, str):
        raise ConfigError(field, "type", "must be a URL like https://alerts.example.org")
    if url.startswith("https://"):
        rest, tls, port = url[8:], True, 443
    elif url.startswith("http://"):
        rest, tls, port = url[7:], False, 80
    else:
        raise ConfigError(field, "type", "must start with https:// or http://")
    if "/" in rest:
        rest, path = rest.split("/", 1)
        if path:
            raise ConfigError(field, "range",
                              "give only https://host[:port]: the device posts to /v1/frames")
    v6 = rest.startswith("[::1]")  # the IPv6 loopback, the only address in brackets
    if v6:
        rest = "::1" + rest[5:]
    if rest.count(":") > (2 if v6 else 0):
        host, p = rest.rsplit(":", 1)
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise ConfigError(field, "range", "port must be 1..65535")
        port = int(p)
    else:
        host = rest
    if not host:
        raise ConfigError(field, "missing", "no host in the URL")
    if host != "::1" and (not _only(host.lower(), _HOST) or host[0] in ".-"):
        raise ConfigError(field, "range", "host %r is not a host name or IPv4 address" % host)
    return {"host": host, "port": port, "tls": tls}


def modem_settings(cfg):
    """The settings sotto.modem.build() takes, from a validated config."""
    s = dict(cfg["server"])
    s["apn"] = cfg["apn"]
    s["ca_cert"] = cfg["ca_cert"]
    s["insecure_tls"] = cfg["insecure_tls"]
    s["sms_number"] = cfg["sms_number"]
    s["sms_after_s"] = cfg["delivery"]["sms_after_s"]
    s["sms_every_s"] = cfg["delivery"]["sms_every_s"]
    sec = cfg.get("secondary")
    if sec is not None:  # sotto.paths: where to go when the first receiver stops answering
        s["secondary"] = dict(sec)
        s["secondary"]["ca_cert"] = cfg["secondary_ca_cert"]
        s["secondary_after_s"] = cfg["delivery"]["secondary_after_s"]
        s["probe_s"] = cfg["delivery"]["probe_s"]
    return s
