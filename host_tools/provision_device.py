"""The device side of provisioning (host_tools.provision): one session on one flashed
device over the raw REPL, running the firmware's own modules there.

    target = DeviceSession(link)        # NotFlashed unless the firmware is whole
    target.config, target.key, target.waiting, target.kinds, target.alert_live
    target.check_config(cfg)            # sotto.config.validate(obj, storage, strict=True), on the device
    target.put_file(name, data)         # a file under /data (the CA certificate)
    target.new_key(config_text)         # identity.bak kept until commit(); undo() puts the old back
    target.batch(n, max_bytes) / ack(seqs) / discard_queue()   # the frame queue (sotto.queue)
    target.clean(keep)                  # remove what the old identity left under /data

Nothing here prints, returns or raises the device's seed: only public keys and
frames (already signed, on their way to the centre) leave the device.
"""

from __future__ import annotations

import base64
import json

from host_tools.device_link import DeviceCodeError, DeviceLink
from host_tools.errors import SottoError, UsageError
from host_tools.flash import read_manifest

DATA_ROOT = "/data"
BACKUP = "identity.bak"


class ProvisionError(SottoError, RuntimeError):
    """Provisioning or key rotation could not be done; the message says what to do."""


class NotFlashed(ProvisionError):
    """The firmware is not (completely) on the device."""


class ConfigRejected(UsageError):
    """The firmware's own config.validate refused the configuration."""

    def __init__(self, message: str, field: str, reason: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


# Device-side code: loaded once per session; each call prints one JSON line.
_DEVICE = """\
import json, os, binascii
from sotto import config as _p_config, identity as _p_identity, alertrec as _p_alertrec
from sotto.queue import FrameQueue as _p_FrameQueue
from sotto.storage import Storage as _p_Storage
_p_st = _p_Storage('/data')
_p_q = None
def _p_queue():
    global _p_q
    if _p_q is None:
        _p_q = _p_FrameQueue(_p_st)
        _p_q.recover()
    return _p_q
def _p_state():
    r = {'config': None, 'key': None, 'key_error': None, 'backup': _p_st.exists('identity.bak')}
    raw = _p_st.read(_p_config.CONFIG)
    if raw is not None:
        r['config'] = raw.decode()
    try:
        r['key'] = binascii.hexlify(_p_identity.public_key(_p_st)).decode()
    except _p_identity.IdentityError as e:
        r['key_error'] = e.reason
    q = _p_queue()
    r['waiting'] = len(q)
    r['kinds'] = dict((str(t), q.count(t)) for t in range(1, 16) if q.count(t))
    r['alert'] = _p_alertrec.read(_p_st) is not None
    print(json.dumps(r))
def _p_check(text):
    try:
        _p_config.validate(json.loads(text), _p_st, True)
    except _p_config.ConfigError as e:
        print(json.dumps({'field': e.field, 'reason': e.reason, 'msg': str(e)}))
        return
    except ValueError:
        print(json.dumps({'field': 'config.json', 'reason': 'corrupt', 'msg': 'not JSON'}))
        return
    print(json.dumps({'ok': 1}))
def _p_write_config(text):
    _p_st.write_atomic(_p_config.CONFIG, text.encode())
    _p_config.load(_p_st)
    print(json.dumps({'ok': 1}))
def _p_new_key():
    old = _p_st.read(_p_identity.KEY)
    if old is not None:
        _p_st.write_atomic('identity.bak', old)
    old = None
    try:
        pub = _p_identity.create(_p_st, os.urandom, True)
    except _p_identity.IdentityError as e:
        print(json.dumps({'error': e.reason, 'msg': str(e)}))
        return
    print(json.dumps({'key': binascii.hexlify(pub).decode()}))
def _p_undo(config_text):
    old = _p_st.read('identity.bak')
    if old is not None:
        _p_st.write_atomic(_p_identity.KEY, old)
    else:
        _p_st.remove(_p_identity.KEY)
    old = None
    if config_text is None:
        _p_st.remove(_p_config.CONFIG)
    else:
        _p_st.write_atomic(_p_config.CONFIG, config_text.encode())
    _p_st.remove('identity.bak')
    print(json.dumps({'ok': 1}))
def _p_commit():
    _p_st.remove('identity.bak')
    print(json.dumps({'ok': 1}))
def _p_put(name, b64):
    _p_st.write_atomic(name, binascii.a2b_base64(b64))
    print(json.dumps({'ok': 1}))
def _p_batch(n, maxb):
    out = []
    for seq, wire in _p_queue().batch(n, maxb):
        out.append([seq, binascii.b2a_base64(wire).decode().strip()])
    print(json.dumps(out))
def _p_ack(seqs):
    _p_queue().ack(seqs)
    print(json.dumps({'left': len(_p_queue())}))
def _p_discard():
    q = _p_queue()
    n = len(q)
    q.ack(q.seqs())
    _p_alertrec.remove(_p_st)
    print(json.dumps({'discarded': n}))
def _p_clean(keep):
    gone = []
    for name in _p_st.listdir():
        if name in keep or name == 'q':
            continue
        try:
            _p_st.remove(name)
            gone.append(name)
        except OSError:
            pass
    print(json.dumps({'removed': gone}))
"""


class DeviceSession:
    """The provisioning session on one device (see module doc)."""

    def __init__(self, dev: DeviceLink) -> None:
        self.dev = dev
        if read_manifest(dev) is None:
            raise NotFlashed(f"the firmware is not (completely) on the device at {dev.port}: run "
                             f"`sotto flash --port {dev.port}` first")
        try:
            dev.exec(_DEVICE, what="loading the firmware's config, identity and queue modules")
        except DeviceCodeError as e:
            raise NotFlashed(f"the device's firmware cannot provision ({e.device_error}): run "
                             f"`sotto flash --port {dev.port}` to update it") from None
        state = self.call("_p_state()", "reading the device's configuration, public key and queue")
        self.config_text: str | None = state.get("config")  # type: ignore[assignment]
        key = state.get("key")
        self.key: bytes | None = bytes.fromhex(str(key)) if key else None
        self.key_error: str | None = state.get("key_error")  # type: ignore[assignment]
        self.waiting = int(state.get("waiting") or 0)  # type: ignore[call-overload]
        kinds = state.get("kinds") or {}
        self.kinds: dict[int, int] = {int(k): int(v) for k, v in kinds.items()}  # type: ignore[union-attr]
        self.alert_live = bool(state.get("alert"))
        self.config: dict[str, object] = {}
        if self.config_text:
            try:
                parsed = json.loads(self.config_text)
                self.config = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                self.config = {}

    def call(self, code: str, what: str, timeout_s: float = 60) -> dict[str, object]:
        got = self.dev.exec_json(code, what=what, timeout_s=timeout_s)
        if not isinstance(got, dict):
            raise ProvisionError(f"the device gave an unreadable answer while {what}: {got!r}")
        return got

    @property
    def has_key(self) -> bool:
        return self.key is not None or self.key_error == "corrupt"

    def check_config(self, cfg: dict[str, object]) -> str:
        """The configuration as it will be written, once the firmware accepted it
        (strict: it must be able to deliver over the network)."""
        text = json.dumps(cfg, sort_keys=True)
        got = self.call(f"_p_check({text!r})", "checking the configuration")
        if "ok" not in got:
            raise ConfigRejected(f"the device's firmware refused the configuration: {got.get('msg')}",
                                 str(got.get("field")), str(got.get("reason")))
        return text

    def put_file(self, name: str, data: bytes) -> None:
        """A small file under /data, written atomically by the firmware's Storage."""
        self.call(f"_p_put({name!r}, {base64.b64encode(data)!r})", f"writing /data/{name}")

    def new_key(self, config_text: str | None) -> bytes:
        if config_text is not None:
            self.call(f"_p_write_config({config_text!r})", "writing the configuration")
        got = self.call("_p_new_key()", "making the device's key")
        if "key" not in got:
            raise ProvisionError(f"the device could not make its key: {got.get('msg')}")
        return bytes.fromhex(str(got["key"]))

    def undo(self) -> None:
        """Put the old key and configuration back (after a failure; errors here are secondary)."""
        try:
            self.call(f"_p_undo({self.config_text!r})", "putting the old key and configuration back")
        except SottoError:
            pass  # the first failure is what the technician must see; re-running repairs the rest

    def commit(self) -> None:
        self.call("_p_commit()", "removing the old key")

    # -- the frame queue ----------------------------------------------------------
    def batch(self, max_frames: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Queued frames in delivery order (sotto.queue.FrameQueue.batch)."""
        got = self.dev.exec_json(f"_p_batch({max_frames}, {max_bytes})", what="reading queued frames",
                                 timeout_s=60)
        if not isinstance(got, list):
            raise ProvisionError(f"the device gave an unreadable list of frames: {str(got)[:80]!r}")
        return [(int(seq), base64.b64decode(str(b64))) for seq, b64 in got]

    def ack(self, seqs: list[int]) -> int:
        """Remove frames the centre acknowledged; returns how many are left."""
        got = self.call(f"_p_ack({list(seqs)!r})", "removing delivered frames")
        self.waiting = int(got.get("left", 0))  # type: ignore[call-overload]
        return self.waiting

    def discard_queue(self) -> int:
        """Throw every queued frame and the live alert's record away."""
        got = self.call("_p_discard()", "discarding the queued frames")
        self.waiting, self.alert_live = 0, False
        return int(got.get("discarded", 0))  # type: ignore[call-overload]

    def clean(self, keep: list[str]) -> list[str]:
        """Remove every file under /data but `keep` (and the queue's folder)."""
        got = self.call(f"_p_clean({list(keep)!r})", "removing what the old identity left")
        return [str(n) for n in got.get("removed", [])]  # type: ignore[union-attr]
