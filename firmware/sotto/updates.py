# Over-the-air updates on the running device (docs/ota.md), wired into
# sotto.app.Device: the release on trial and its health check (sotto.bootsel),
# staging what the centre assigns (sotto.otafetch), the update status frames
# (st 11: upd, err, pend) and the restart that lets boot.py switch or roll
# back, which never happens while an alert is live or frames wait.
#
# The functions take the Device; they set dev.sel, dev.fw (the version
# running), dev.health (bootsel.Health) and dev.fetcher (otafetch.Fetcher,
# None without a release key or a network). step() runs every pass and
# allocates nothing unless a part other than "ota" has failed.
from sotto import VERSION, bootsel, frames, ota
from sotto.log import Logger
from sotto.otafetch import Fetcher
from sotto.storage import Storage

_log = Logger("ota")


def boot(dev, cfg, opener, now_ms):
    st = dev.storage
    dev.sel = sel = bootsel.read(st)  # boot.py already switched (or rolled back)
    dev.fw = bootsel.running_version(sel, VERSION)
    dev.health = bootsel.Health(st, sel, cfg["ota"]["health_s"], now_ms)
    key = ota.release_key(cfg, st)
    if key is None or opener is None:
        return

    def report(upd, err, pend):
        report_update(dev, upd, err, pend)

    dev.fetcher = f = Fetcher(st, Storage(bootsel.flash_root(dev.hal.storage_root)), sel, key,
                              cfg["board"], dev.fw, cfg["ota"]["chunk_bytes"], dev.signer.sign_request,
                              busy=lambda: dev.session.live, report=report)
    if dev.delivery is not None:
        dev.delivery.ota = f
    try:
        f.resume()
    except Exception as e:  # noqa: BLE001 - an update never stops the device
        dev._fault("ota", e)


def report_update(dev, upd, err, pend):
    fields = {frames.K_BATT: dev.power.pct, frames.K_ST: frames.ST_UPDATE, frames.K_UPD: upd}
    if err:
        fields[frames.K_ERR] = err[:frames.ERR_MAX_BYTES]
    if pend:
        fields[frames.K_PEND] = pend
    dev._emit(dev._now, frames.STATUS, fields)  # fw: with every status (Device._health)


def report_sel(dev, now_ms):
    # a result the selector holds and has not reported: an update applied or rolled back
    sel = dev.sel
    if sel is None or sel["rep"] or not sel["res"]:
        return
    dev._now = now_ms
    report_update(dev, sel["res"], sel["why"], None)
    sel["rep"] = True
    try:
        bootsel.write(dev.storage, sel)
    except OSError as e:
        dev._fault("ota", e)


def _other_faults(faults):
    # the parts that failed, "ota" aside; () (no allocation) when there are none
    if len(faults) - (1 if "ota" in faults else 0) <= 0:
        return ()
    return [n for n in faults if n != "ota"]


def step(dev, now_ms):
    """One pass: the health check of a release on trial, a chunk of a staging,
    the restart when it is due. Returns how long the caller may sleep."""
    h = dev.health
    d = dev.delivery
    if h is None or d is None:
        return 60000
    if h.on_trial and h.step(now_ms, _other_faults(dev.faults), d.answers > 0):
        if not h.failed:
            _log.i("release %s is good", dev.fw)
            report_sel(dev, now_ms)
    f = dev.fetcher
    more = f is not None and f.step()
    idle = not dev.session.live and not len(dev.queue) and not dev.pending
    if idle and not dev._reset_asked and (h.failed or (f is not None and f.restart and not h.on_trial)):
        # the switch (or the rollback) happens at boot; never during an alert
        dev._reset_asked = True
        _log.i("restarting: %s", "rollback" if h.failed else "update staged")
        dev.hal.reset()
    return 0 if more else 60000
