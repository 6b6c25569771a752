"""Provision a device and rotate its key, over mpremote.

The device makes its own Ed25519 key: code run on the device imports
`sotto.identity` (the firmware just flashed) and calls
`identity.create(storage, os.urandom)` (the ESP32's hardware RNG). The seed is
written to /data/identity.key on the device and never crosses the wire; the
host reads back only the 32-byte public key. The configuration is checked by
the firmware's own `sotto.config.validate`, on the device, before it is
written. The public key goes into the registry the receiver trusts
(host_tools.registry).

Order, so that a failure never leaves a device whose key the registry does not
know: every host-side check first (registry, arguments), then on the device:
validate the configuration, write it, keep the old key file beside the new one
(identity.bak, on the device), make the new key; then the registry change; if
that fails, the old key and configuration are put back on the device. Only
then is identity.bak removed.
"""

from __future__ import annotations

import getpass
import hmac
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from host_tools.device_link import DeviceCodeError, DeviceLink
from host_tools.errors import SottoError, UsageError
from host_tools.flash import read_manifest
from host_tools.ids import format_device_id, parse_device_id
from host_tools.registry import Registry, key_fingerprint

T = TypeVar("T")

DATA_ROOT = "/data"
BACKUP = "identity.bak"


class ProvisionError(SottoError, RuntimeError):
    """Provisioning or key rotation could not be done; the message says what to do."""


class AlreadyProvisioned(ProvisionError, FileExistsError):
    """The device (or its id in the registry) already has a key; --force replaces it."""


class NotProvisioned(ProvisionError):
    """rotate-key on a device that has no key or no configuration."""


class NotFlashed(ProvisionError):
    """The firmware is not (completely) on the device."""


class ConfigRejected(UsageError):
    """The firmware's own config.validate refused the configuration."""

    def __init__(self, message: str, field: str, reason: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ProvisionRequest:
    """What the technician asked for; None keeps the device's current value (or the default)."""

    device_id: str
    officer: str | None = None
    server: str | None = None
    sms_number: str | None = None
    apn: str | None = None
    board: str | None = None


@dataclass(frozen=True)
class KeyChange:
    device_id: str  # as people write it (SOTTO-42 or 16 hex digits)
    public_key: bytes
    fingerprint: str
    revoked: tuple[str, ...]  # fingerprints of keys this revoked
    config: dict[str, object]


# Device-side code: loaded once per session; each call prints one JSON line.
# Nothing here prints, returns or raises the seed: only public keys leave.
_DEVICE = """\
import json, os, binascii
from sotto import config as _p_config, identity as _p_identity
from sotto.storage import Storage as _p_Storage
_p_st = _p_Storage('/data')
def _p_state():
    r = {'config': None, 'key': None, 'key_error': None, 'backup': _p_st.exists('identity.bak')}
    raw = _p_st.read(_p_config.CONFIG)
    if raw is not None:
        r['config'] = raw.decode()
    try:
        r['key'] = binascii.hexlify(_p_identity.public_key(_p_st)).decode()
    except _p_identity.IdentityError as e:
        r['key_error'] = e.reason
    print(json.dumps(r))
def _p_check(text):
    try:
        _p_config.validate(json.loads(text))
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
"""


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name in a container: still record the host
        return socket.gethostname()


class _Device:
    """The provisioning session on one device."""

    def __init__(self, dev: DeviceLink) -> None:
        self.dev = dev
        if read_manifest(dev) is None:
            raise NotFlashed(f"the firmware is not (completely) on the device at {dev.port}: run "
                             f"`sotto flash --port {dev.port}` first")
        try:
            dev.exec(_DEVICE, what="loading the firmware's config and identity modules")
        except DeviceCodeError as e:
            raise NotFlashed(f"the device's firmware cannot provision ({e.device_error}): run "
                             f"`sotto flash --port {dev.port}` to update it") from None
        state = self.call("_p_state()", "reading the device's configuration and public key")
        self.config_text: str | None = state.get("config")
        self.key: bytes | None = bytes.fromhex(state["key"]) if state.get("key") else None
        self.key_error: str | None = state.get("key_error")
        self.config: dict[str, object] = {}
        if self.config_text:
            try:
                parsed = json.loads(self.config_text)
                self.config = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                self.config = {}

    def call(self, code: str, what: str) -> dict[str, object]:
        got = self.dev.exec_json(code, what=what, timeout_s=60)
        if not isinstance(got, dict):
            raise ProvisionError(f"the device gave an unreadable answer while {what}: {got!r}")
        return got

    @property
    def has_key(self) -> bool:
        return self.key is not None or self.key_error == "corrupt"

    def check_config(self, cfg: dict[str, object]) -> str:
        text = json.dumps(cfg, sort_keys=True)
        got = self.call(f"_p_check({text!r})", "checking the configuration")
        if "ok" not in got:
            raise ConfigRejected(f"the device's firmware refused the configuration: {got.get('msg')}",
                                 str(got.get("field")), str(got.get("reason")))
        return text

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


def _config_for(request: ProvisionRequest, kid: bytes, current: dict[str, object]) -> dict[str, object]:
    cfg = dict(current)  # keep tuned settings (trigger, audio, ...) across a re-provision
    cfg["device_id"] = kid.hex()
    for key, value in (("receiver", request.server), ("apn", request.apn), ("officer", request.officer),
                       ("sms_number", request.sms_number), ("board", request.board)):
        if value is not None:
            cfg[key] = value
    if not cfg.get("receiver"):
        raise UsageError("the device has no receiver yet: give --server https://HOST[:PORT] "
                         "(the monitoring centre's receiver)")
    if not cfg.get("apn"):
        raise UsageError("the device has no APN yet: give --apn NAME (from the SIM card's operator)")
    return cfg


def _replace_key(target: _Device, dev: DeviceLink, config_text: str | None,
                 register: Callable[[bytes], T], reset: bool) -> tuple[bytes, T]:
    """Make the device's new key (writing config_text first, if given), register it,
    then make the change final on the device; a failure before that undoes it there."""
    try:
        new_key = target.new_key(config_text)
        registered = register(new_key)
    except BaseException:
        target.undo()
        raise
    target.commit()
    if reset:
        dev.soft_reset_and_run()
    return new_key, registered


def provision(port: str, request: ProvisionRequest, db_path: str | Path, *, force: bool = False,
              link: DeviceLink | None = None, reset: bool = True) -> KeyChange:
    """Configure the device at `port`, let it make its key, register the public key.

    Refuses (AlreadyProvisioned) a device that has a key, or an id whose key
    the registry already trusts, unless force: then the old key is revoked.
    """
    kid = parse_device_id(request.device_id)
    name = format_device_id(kid)
    by = f"sotto provision ({_who()})"
    with Registry(db_path) as reg:
        record = reg.find(kid)
        if record is not None and record.active_key is not None and not force:
            raise AlreadyProvisioned(
                f"device {name} is already registered with key {record.active_key.fingerprint}; "
                "to give it a new key (the old one is revoked), run again with --force")
        dev = link or DeviceLink.open(port)
        try:
            target = _Device(dev)
            if target.has_key and not force:
                old_id = target.config.get("device_id", "?")
                fp = key_fingerprint(target.key) if target.key else "damaged"
                raise AlreadyProvisioned(
                    f"the device at {port} is already provisioned (device id {old_id}, key {fp}); "
                    "to provision it again (a new key; the old one is revoked) add --force")
            cfg = _config_for(request, kid, target.config if force else {})
            text = target.check_config(cfg)
            old_key = target.key
            old_kid = _config_kid(target.config)
            def register(key: bytes) -> tuple[str, ...]:
                return _register(reg, kid, key, request.officer, old_kid, old_key, by)

            new_key, revoked = _replace_key(target, dev, text, register, reset)
        finally:
            if link is None:
                dev.close()
    return KeyChange(name, new_key, key_fingerprint(new_key), revoked, json.loads(text))


def _config_kid(cfg: dict[str, object]) -> bytes | None:
    value = cfg.get("device_id")
    if not isinstance(value, str):
        return None
    try:
        return parse_device_id(value)
    except UsageError:
        return None


def _register(reg: Registry, kid: bytes, new_key: bytes, officer: str | None, old_kid: bytes | None,
              old_key: bytes | None, by: str) -> tuple[str, ...]:
    revoked: list[str] = []
    record = reg.find(kid)
    if record is not None and record.active_key is not None:
        revoked.append(record.active_key.fingerprint)
        reg.rotate(kid, new_key, by=by)
        if officer is not None:
            reg.set_officer(kid, officer)
    else:
        reg.add(kid, new_key, officer, by=by)
    if old_kid is not None and old_kid != kid and old_key is not None:
        # The device was someone else before: its old identity must not stay trusted.
        other = reg.find(old_kid)
        trusted = other.public_key if other is not None else None
        if trusted is not None and hmac.compare_digest(trusted, old_key):
            reg.revoke(old_kid, reason=f"device re-provisioned as {format_device_id(kid)}", by=by)
            revoked.append(key_fingerprint(old_key))
    return tuple(revoked)


def rotate_key(port: str, db_path: str | Path, *, link: DeviceLink | None = None,
               reset: bool = True) -> KeyChange:
    """Make a new key on the device, register it and revoke the old one."""
    by = f"sotto rotate-key ({_who()})"
    with Registry(db_path) as reg:
        dev = link or DeviceLink.open(port)
        try:
            target = _Device(dev)
            kid = _config_kid(target.config)
            if kid is None or target.key is None:
                what = "no configuration" if kid is None else f"no usable key ({target.key_error})"
                raise NotProvisioned(f"the device at {port} has {what}: provision it with `sotto provision "
                                     f"--port {port} --id ID ...` (add --force to replace a damaged key)")
            name = format_device_id(kid)
            record = reg.find(kid)
            trusted = record.public_key if record is not None else None
            if trusted is None or not hmac.compare_digest(trusted, target.key):
                raise ProvisionError(
                    f"the registry does not trust device {name}'s current key "
                    f"({key_fingerprint(target.key)}), "
                    f"so a rotation cannot be checked against it: provision the device again with "
                    f"`sotto provision --port {port} --id {name} --force`")
            new_key, _ = _replace_key(target, dev, None, lambda key: reg.rotate(kid, key, by=by), reset)
        finally:
            if link is None:
                dev.close()
    return KeyChange(name, new_key, key_fingerprint(new_key), (key_fingerprint(target.key),), target.config)
