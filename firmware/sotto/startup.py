# The boot sequence of sotto.app.Device (Device.boot calls boot(dev, now_ms)).
#
# In order: count the boot (sotto.remote: BOOT_LOOP_LIMIT boots without
# sotto.app.STABLE_MS of uptime in between put the device in minimal mode),
# load the configuration (a fallback when config.json is not usable, flagged
# config-invalid) and the key, recover the queue and the counters, build every
# part once and wire their callbacks to the Device (the answer handlers of
# sotto.loopback among them), start the delivery task and the update check
# (sotto.updates), resume an alert cut short by the power, then say so: a
# status frame (started, or boot loop), another when running on a fallback
# configuration, the update applied or rolled back, and the centre's commands
# still to be run. Everything it builds is kept on the Device; nothing here
# runs after boot but the small callbacks it wires (closures over the
# Device), which hold this module's globals: so it is not one of
# app.BOOT_ONLY (dropping it would free nothing), and sotto.config and
# sotto.identity, which are, are imported inside boot() and never kept here.
from micropython import const

from sotto import frames, modem, paths, prering, remote, updates
from sotto.app import SAVE_FIX_MS
from sotto.audio import Audio
from sotto.checkin import CheckIn
from sotto.clock import Clock
from sotto.commands import Commands
from sotto.counters import Counters
from sotto.feedback import Feedback
from sotto.gnss import Gnss
from sotto.haptic import Haptic
from sotto.log import Logger
from sotto.loopback import LoopBack
from sotto.motion import Motion
from sotto.power import Power
from sotto.queue import FrameQueue
from sotto.sched import Scheduler
from sotto.session import Session
from sotto.storage import Storage
from sotto.ticks import ticks_add
from sotto.trigger import Trigger

BOOT_LOOP_LIMIT = const(5)

_log = Logger("app")  # the device's lines, as they were before boot had a module of its own


def boot(dev, now_ms):
    """Device.boot: True when the device runs; False when it cannot (dev.error says why)."""
    # the configuration's checks and the key's loader: boot only, imported
    # here (not at the top, nor kept in this module's globals, which the
    # callbacks wired below hold) so that forget_boot_modules() can drop them
    from sotto import config as config_mod
    from sotto import identity

    hal = dev.hal
    dev.t_boot = now_ms
    dev.storage = st = Storage(hal.storage_root)
    dev.boots = remote.count_boot(dev)
    dev.minimal = dev.boots >= BOOT_LOOP_LIMIT
    rc = getattr(hal, "reset_cause", None)
    dev.reset_cause = rc() if rc is not None else frames.RST_UNKNOWN
    try:
        cfg, obj = remote.load_config(dev, config_mod, st)
        key = identity.load(st)
    except (config_mod.ConfigError, identity.IdentityError) as e:
        dev.error = e
        _log.e("cannot run: %s", e)
        return False
    dev.cfg = cfg
    dev.cfg_version = cfg["version"]
    dev._cfg_obj = obj
    dev.network_error = config_mod.network_refusal(cfg, st)
    if dev.network_error is not None:
        dev._fault("network", dev.network_error)  # logged; alerts still queue and go by SMS
    opener, sec_opener = paths.openers(dev, cfg, config_mod.secondary_refusal(cfg, st))
    if cfg["insecure_tls"] and cfg["server"]["tls"]:
        dev._flags = frames.FLAG_INSECURE_TLS
    lb = LoopBack(dev)  # the answer handlers
    dev.queue = FrameQueue(st, cfg["queue_max_bytes"])
    dev.queue.on_ack = lb.acked
    kept = dev.queue.recover()
    dev.counters = Counters(st)
    dev.counters.load(floor_seq=dev.queue.max_seq())
    key.idle = dev._service_mic
    dev.signer = frames.FrameSigner(cfg["device_id"], key)
    del key
    dev.gnss = Gnss(st)
    dev.clock = Clock(dev.gnss, now_ms)
    dev.haptic = Haptic(hal.haptic, enabled=cfg["trigger"]["haptic"])
    dev.haptic.on_play = dev._played
    dev.motion = Motion(cfg, dev.haptic, dev._raise_alert)
    # a board without an accelerometer: the HAL has no accel_events (and motion stays off)
    dev._accel = getattr(hal, "accel_events", None)
    if dev.motion.enabled and dev._accel is None:
        dev._fault("motion", "motion.* enabled on a board without an accelerometer")
    a = cfg["audio"]
    dev.audio = Audio(hal, a["rate_hz"], a["chunk_ms"])  # its buffers and the encoder's tables
    if a["pre_trigger"] and not dev.minimal:
        # RAM only, taken once (about 4 KB a second at 8 kHz)
        dev.prering = prering.PreRing(a["pre_s"], a["chunk_ms"], dev.audio.chunk_bytes)
    dev._frame_buf = bytearray(frames.frame_bytes(dev.audio.chunk_bytes))  # every frame is made here
    dev.power = Power(cfg, hal.battery_mv, dev._emit, now_ms)
    dev.power.enabled = not dev.minimal
    dev._sleep = getattr(hal, "sleep_until", None)
    dev.session = Session(cfg, dev._emit, dev.gnss, dev.audio, dev.haptic,
                          gnss_power=dev._gnss_power, minimal=dev.minimal, storage=st,
                          queue=dev.queue, seq_mark=lambda: dev.counters.peek_seq - 1)
    dev.session.frame_on_flash = lambda: not dev.pending
    dev.session.pre = dev.prering
    dev.session.set_battery(lambda: dev.power.pct)
    dev.session.utc_s = dev.clock.utc_s
    dev.checkin = CheckIn(cfg, dev._emit, dev.haptic, dev.session._add_location, dev.clock.utc_s,
                          lambda: dev.power.pct, dev._raise_alert, storage=st,
                          gnss_on=dev.session.gnss_for, fresh=dev.gnss.has_fix)
    dev.trigger = Trigger(cfg["trigger"], dev.checkin.patterns_for_trigger())
    dev.feedback = Feedback(cfg, dev.haptic, dev._emit, lambda: dev.power.pct)
    dev.commands = Commands(cfg, st, dev._emit, dev.session, dev.feedback, dev.haptic)
    dev.commands.configure = lambda version, settings, now_ms: remote.configure(dev, version, settings,
                                                                               now_ms)
    dev.sched = Scheduler()
    dev.delivery = modem.build(
        hal, dev.sched, dev.queue, config_mod.modem_settings(cfg),
        alert_live=lambda: dev.session.live,
        on_time=lb.network_time,
        on_closed=lambda sids: dev.session.closed_by_centre(sids, dev._now),
        on_rejected=lb.rejected, opener=opener, refusal=dev.network_error,
        on_start_acked=lb.start_acked,
        on_commands=lb.run_commands, secondary_opener=sec_opener)
    if dev.delivery.paths.dual:
        dev.delivery.paths.on_down = lambda rx: paths.receiver_down(dev, rx)
    dev.sched.spawn("delivery", dev.delivery.task)
    updates.boot(dev, cfg, opener, now_ms)
    dev._now = now_ms
    dev._next_save = ticks_add(now_ms, SAVE_FIX_MS)
    dev._stable = False
    dev._gnss_power(False)
    dev.ready = True
    _log.i("device %s up: boot %d, %d frames waiting%s", cfg["device_id"].hex(), dev.boots,
           kept, ", MINIMAL MODE (boot loop)" if dev.minimal else "")
    try:
        # before anything else is signed: an alert cut short by the power goes first
        if dev.session.resume(now_ms, dev.counters.next_sid) and dev.queue.count(frames.ALERT_START):
            dev.feedback.alert_started(dev.session.sid, now_ms)  # not acknowledged yet
    except Exception as e:  # noqa: BLE001 - a bad alert record must not stop the device
        dev._fault("resume", e)
    dev._alerts_seen = dev.session.alerts
    st_code = frames.ST_BOOT_LOOP if dev.minimal else frames.ST_STARTED
    dev._emit(now_ms, frames.STATUS, {frames.K_BATT: dev.power.pct, frames.K_ST: st_code})
    if dev.config_invalid is not None:
        dev._emit(now_ms, frames.STATUS, {frames.K_BATT: dev.power.pct,
                                          frames.K_ST: frames.ST_CONFIG_INVALID,
                                          frames.K_ERR: dev.config_invalid})
    updates.report_sel(dev, now_ms)  # an update applied or rolled back at this boot (docs/ota.md)
    try:
        dev.commands.load(now_ms)
    except Exception as e:  # noqa: BLE001
        dev._fault("commands", e)
    return True
