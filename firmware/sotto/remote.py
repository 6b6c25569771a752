# Remote configuration and device health, wired into sotto.app.Device.
#
# Configuration trouble is survived: a config.json that is missing or corrupt
# falls back to config.good (the last one that loaded), else to the built-in
# defaults with the identity, receiver and trust anchors salvaged from either
# (sotto.config.boot_load); the device then flags every status and heartbeat
# config-invalid and says why in a st 8 status frame, and the button still
# raises alerts. The centre's `config` command changes settings in place
# (configure): the new file is written atomically and kept as config.good;
# the parts that hold settings take them at once, except audio.rate_hz,
# chunk_ms, pre_trigger, pre_s, queue_max_bytes, delivery.* and ota.*, which
# are read at boot (checkin.* and motion.* take effect at once: an open visit
# and a pre-alarm under way carry on).
#
# Health rides in every status and heartbeat (never a location): firmware
# version, configuration version, queue depth and signal quality; status
# frames add the reset cause, boots since provisioning and faults since boot.
import struct

from sotto import frames
from sotto.log import Logger
from sotto.trigger import Trigger

BOOTS = "boots"
_log = Logger("config")


def load_config(dev, config_mod, st):
    """(cfg, obj) at boot; dev.config_invalid says why when it is a fallback."""
    if dev._config is not None:
        return config_mod.validate(dev._config), dev._config
    cfg, obj, dev.config_invalid = config_mod.boot_load(st, frames.ERR_MAX_BYTES)
    if dev.config_invalid is not None:
        _log.e("configuration not usable (%s): running on a fallback", dev.config_invalid)
    return cfg, obj


def count_boot(dev):
    """Boots since the last stable run (dev.boots_total: since provisioning);
    an old 4-byte file holds the first only."""
    raw = dev.storage.read(BOOTS)
    n = total = 0
    if raw is not None and len(raw) == 8:
        n, total = struct.unpack(">II", raw)
    elif raw is not None and len(raw) == 4:
        n = total = struct.unpack(">I", raw)[0]
    dev.boots_total = total = (total + 1) & 0xFFFFFFFF
    try:
        dev.storage.write_atomic(BOOTS, struct.pack(">II", n + 1, total))
    except OSError as e:
        _log.e("cannot count boots: %s", e)
    return n + 1


def stable(dev):
    """The device ran long enough: the boot-loop count starts again."""
    dev.storage.write_atomic(BOOTS, struct.pack(">II", 0, dev.boots_total))


def configure(dev, version, settings, now_ms):
    """Apply the centre's configuration `version` (sotto.commands "config"); None
    when applied, else the reason (at most 64 bytes). Either way a health status
    frame says which version runs (and err why not) before the command's reply."""
    from sotto import config as config_mod  # boot-only module: loaded again for this rare path

    err = None
    if dev.session.live:
        err = "busy: an alert is live; send it again after the alert"
    else:
        try:
            cfg, obj = config_mod.apply_change(dev.storage, dev._cfg_obj, settings, version, dev.cfg_version)
        except config_mod.ConfigError as e:
            err = e.short(frames.ERR_MAX_BYTES)
        except OSError as e:
            err = ("flash: %s" % (e,))[:frames.ERR_MAX_BYTES]
    if err is None:
        dev._cfg_obj = obj
        take(dev, cfg, now_ms)
        dev.config_invalid = None
        _log.i("configuration %d applied", version)
    else:
        _log.w("configuration %d refused: %s", version, err)
    f = {frames.K_BATT: dev.power.pct, frames.K_ST: frames.ST_HEALTH}
    if err is not None:
        f[frames.K_ERR] = err
    dev._emit(now_ms, frames.STATUS, f)
    return err


def take(dev, cfg, now_ms):
    # the parts that hold settings take the new ones (no alert is live)
    dev.cfg = cfg
    dev.cfg_version = cfg["version"]
    dev.checkin.configure(cfg)
    dev.motion.configure(cfg)
    dev.trigger = Trigger(cfg["trigger"], dev.checkin.patterns_for_trigger())
    dev.haptic.enabled = cfg["trigger"]["haptic"]
    dev.session.configure(cfg)
    dev.power.configure(cfg, now_ms)
    dev.feedback.configure(cfg)
    dev.commands.ask_timeout_ms = cfg["feedback"]["ask_timeout_s"] * 1000


def stamp(dev, ftype, fields):
    """What a status, heartbeat or alert-start frame says of the device: unauth
    and health (status and heartbeat), rx (the second path, sotto.paths: the
    receiver in use). Returns the flag bits to add (config-invalid)."""
    d = dev.delivery
    if d is not None and d.paths.dual and frames.K_RX not in fields:
        fields[frames.K_RX] = d.paths.active
    if ftype == frames.ALERT_START:
        return 0
    if d is not None and d.unauth:
        fields[frames.K_UNAUTH] = d.unauth
    health(dev, ftype, fields)
    return frames.FLAG_CONFIG_INVALID if dev.config_invalid is not None else 0


def health(dev, ftype, fields):
    """The health keys of a status or heartbeat frame; no location here, ever."""
    fields[frames.K_FW] = dev.fw  # the release running (sotto.bootsel), else the built-in VERSION
    fields[frames.K_CFGV] = dev.cfg_version
    fields[frames.K_QD] = len(dev.queue) + len(dev.pending)
    m = getattr(dev.delivery, "modem", None)
    fields[frames.K_CSQ] = getattr(m, "rssi", 99) if m is not None else 99
    if ftype == frames.STATUS:
        fields[frames.K_RST] = dev.reset_cause
        fields[frames.K_BOOTS] = dev.boots_total
        n = 0
        for v in dev.faults.values():
            n += v
        fields[frames.K_FAULTS] = n & 0xFFFFFFFF
