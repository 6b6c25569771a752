"""Provision a device and rotate its key, over mpremote.

The device makes its own Ed25519 key: code run on the device imports
`sotto.identity` (the firmware just flashed) and calls
`identity.create(storage, os.urandom)` (the ESP32's hardware RNG). The seed is
written to /data/identity.key on the device and never crosses the wire; the
host reads back only the 32-byte public key. The public key goes into the
registry the receiver trusts (host_tools.registry).

Provisioning also installs the centre's trust anchors: the TLS CA certificate
(a file under /data, named by `ca_cert`) and the centre's answer-signing public
key (`centre_key`, from --centre-key-pub or the registry database's record).
The configuration is checked by the firmware's own
`sotto.config.validate(obj, storage, strict=True)` on the device, which refuses
one that could not deliver over the network (no centre key, TLS without a CA
unless `insecure_tls`, http to anything but loopback).

`--force` (and `rotate-key`) on a device whose queue holds frames, or whose
alert is live, refuse: the queued frames are signed with the key about to be
revoked. `drain` delivers them first (host_tools.drain); `discard_queue` throws
them away, recorded in the audit log with the technician's name. `--force`
starts from a clean identity: the new configuration holds only what is given
now, and what the old identity left under /data (its CA file, command state,
last position, reject log...) is removed once the new key is registered.

Order, so that a failure never leaves a device whose key the registry does not
know: every host-side check first (registry, arguments, trust anchors), then on
the device: the queue, the CA file, validate the configuration, write it, keep
the old key file beside the new one (identity.bak), make the new key; then the
registry change (first the --set settings, kept for the silent list:
devcfg.record_provisioned); if that fails, the old key and configuration are put back on
the device. Only then is identity.bak removed and /data cleaned.
"""

from __future__ import annotations

import getpass
import hmac
import json
import socket
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509

from host_tools import config_state, storage
from host_tools.device_link import DeviceLink
from host_tools.drain import DeviceBusy, DrainResult, QueuePolicy, check_receiver_url, settle_queue
from host_tools.errors import UsageError
from host_tools.frames import KeyFormatError, load_public_key, public_key_bytes
from host_tools.ids import format_device_id, parse_device_id
from host_tools.provision_device import BACKUP, ConfigRejected, DeviceSession, NotFlashed, ProvisionError
from host_tools.receiver import centre_key, devcfg
from host_tools.receiver.store import open_db
from host_tools.registry import Registry, key_fingerprint

T = TypeVar("T")

CA_FILE = "centre-ca.pem"   # the CA certificate's name under /data (config ca_cert)
CA2_FILE = "secondary-ca.pem"   # the secondary receiver's CA under /data (config secondary_ca_cert)
CA_MAX_BYTES = 10240        # what the module's AT+CCERTDOWN takes (sotto.config.CA_MAX_BYTES)
# what a clean identity keeps under /data: its key and configuration, the CA just
# written (when there is one), and the sequence counters (a seq is never used
# twice, whatever the key)
_KEEP = ["identity.key", BACKUP, "config.json", "ctr.a", "ctr.b"]

KEEP_QUEUE = QueuePolicy()   # neither drain nor discard: refuse while the device holds frames

__all__ = ["AlreadyProvisioned", "ConfigRejected", "DeviceBusy", "KeyChange", "NotFlashed", "NotProvisioned",
           "ProvisionError", "ProvisionRequest", "QueuePolicy", "UsageError", "provision", "rotate_key"]


class AlreadyProvisioned(ProvisionError, FileExistsError):
    """The device (or its id in the registry) already has a key; --force replaces it."""


class NotProvisioned(ProvisionError):
    """rotate-key on a device that has no key or no configuration."""


@dataclass(frozen=True)
class ProvisionRequest:
    """What the technician asked for. A clean identity: nothing of the device's old
    configuration is kept (board and officer included) unless given again."""

    device_id: str
    officer: str | None = None
    server: str | None = None
    sms_number: str | None = None
    apn: str | None = None
    board: str | None = None
    ca_cert: str | Path | None = None        # a PEM file on this machine: the centre's TLS CA
    centre_key_pub: str | None = None        # 64 hex digits or a key file; None: the registry's record
    insecure_tls: bool = False               # bench work only: TLS without server authentication
    release_key_pub: str | None = None       # the release key's public half (docs/ota.md); None: no updates
    repl_lock: bool = False                  # production: the USB REPL is locked from the next boot
    new_registry: bool = False               # the registry database may be created
    # --set: {dotted name: value}, checked on the device by its own rules
    settings: dict[str, Any] = field(default_factory=dict)
    # the second path (EN 50136 dual path): another centre's receiver, its CA and its key
    secondary_server: str | None = None
    secondary_ca_cert: str | Path | None = None
    secondary_centre_key_pub: str | None = None   # 64 hex digits or a key file (required with the server)


@dataclass(frozen=True)
class KeyChange:
    device_id: str  # as people write it (SOTTO-42 or 16 hex digits)
    public_key: bytes
    fingerprint: str
    revoked: tuple[str, ...]  # fingerprints of keys this revoked
    config: dict[str, object]
    drained: DrainResult | None = None
    discarded: int = 0
    removed: list[str] = field(default_factory=list)   # files of the old identity removed from /data

    def to_json(self) -> dict[str, object]:
        return {"device": self.device_id, "public_key": self.public_key.hex(),
                "fingerprint": self.fingerprint, "revoked": list(self.revoked), "config": self.config,
                "drained": None if self.drained is None else
                {"sent": self.drained.sent, "acknowledged": self.drained.acked},
                "discarded_frames": self.discarded, "removed_files": self.removed}


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name in a container: still record the host
        return socket.gethostname()


# --------------------------------------------------------------------------
# Host-side checks: the registry, the receiver URL, the trust anchors.


def _open_registry(db_path: str | Path, new_registry: bool) -> Registry:
    if storage.is_postgres(db_path):   # a PostgreSQL URL (kept whole: a Path would fold its `//`)
        return Registry(open_db(str(db_path), create=True))
    path = Path(db_path)
    if not path.exists() and not new_registry:
        raise ProvisionError(f"there is no registry at {path}: point --db (or $SOTTO_DB) at the centre's "
                             "database, or add --new-registry to start a new one")
    return Registry(open_db(path, create=True))


def _centre_public_key(request: ProvisionRequest, reg: Registry) -> bytes:
    recorded = centre_key.recorded_public_key(reg.connection)
    if request.centre_key_pub is None:
        if recorded is None:
            raise ProvisionError("the registry database has no centre key: run `sotto centre init --db DB` "
                                 "at the centre, or give --centre-key-pub HEX|FILE (`sotto centre key` "
                                 "prints it)")
        return recorded
    try:
        given = public_key_bytes(load_public_key(request.centre_key_pub))
    except KeyFormatError as e:
        raise UsageError(f"--centre-key-pub: {e}") from None
    if recorded is not None and not hmac.compare_digest(recorded, given):
        raise ProvisionError(f"--centre-key-pub {given.hex()} is not the centre key this registry records "
                             f"({recorded.hex()}): the device would refuse every answer of that centre")
    return given


def _ca_pem(request: ProvisionRequest, tls: bool, ca_cert: str | Path | None = None,
            option: str = "--ca-cert") -> bytes | None:
    ca_cert = request.ca_cert if option == "--ca-cert" else ca_cert
    if request.insecure_tls and ca_cert is not None and option == "--ca-cert":
        raise UsageError("give either --ca-cert or --insecure-tls, not both")
    if not tls:
        if ca_cert is not None:
            raise UsageError(f"{option} goes with an https:// receiver")
        return None
    if ca_cert is None:
        if request.insecure_tls:
            return None
        raise UsageError(f"an https receiver needs the centre's CA certificate: {option} PEM "
                         "(--insecure-tls only for bench work: the device would not know whom it talks to)")
    path = Path(ca_cert)
    try:
        pem = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the CA certificate {path}: {e.strerror or e}") from None
    if len(pem) > CA_MAX_BYTES:
        raise UsageError(f"{path} is {len(pem)} bytes; the modem takes at most {CA_MAX_BYTES}: give the CA "
                         "certificate alone")
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise UsageError(f"{path} is not a PEM certificate") from None
    return pem


def _config_for(request: ProvisionRequest, kid: bytes, centre: bytes, ca: bytes | None) -> dict[str, object]:
    if not request.apn:
        raise UsageError("give --apn NAME (from the SIM card's operator)")
    cfg: dict[str, object] = {"device_id": kid.hex(), "receiver": request.server, "apn": request.apn,
                              "centre_key": centre.hex()}
    for key, value in (("officer", request.officer), ("sms_number", request.sms_number),
                       ("board", request.board)):
        if value is not None:
            cfg[key] = value
    if ca is not None:
        cfg["ca_cert"] = CA_FILE
    if request.insecure_tls:
        cfg["insecure_tls"] = True
    if request.repl_lock:
        cfg["repl_lock"] = True
    for name, value in request.settings.items():   # the device's own rules check them (check_config)
        node: dict[str, Any] = cfg
        parts = name.split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {}
            node = child
        node[parts[-1]] = value
    if request.release_key_pub is not None:
        try:
            cfg["release_key"] = public_key_bytes(load_public_key(request.release_key_pub)).hex()
        except KeyFormatError as e:
            raise UsageError(f"--release-key-pub: {e}") from None
    return cfg


def _secondary(request: ProvisionRequest) -> tuple[dict[str, object], bytes | None]:
    """The second path's configuration entries and its CA (None: no CA file)."""
    given = [o for o, v in (("--secondary-ca-cert", request.secondary_ca_cert),
                            ("--secondary-centre-key-pub", request.secondary_centre_key_pub))
             if v is not None]
    if request.secondary_server is None:
        if given:
            raise UsageError(f"{', '.join(given)} goes with --secondary-server URL")
        return {}, None
    scheme, _host, _port = check_receiver_url(request.secondary_server)
    if request.secondary_centre_key_pub is None:
        raise UsageError("--secondary-server needs the secondary centre's answer-signing key: "
                         "--secondary-centre-key-pub HEX|FILE (`sotto centre key` at that centre)")
    try:
        key = public_key_bytes(load_public_key(request.secondary_centre_key_pub))
    except KeyFormatError as e:
        raise UsageError(f"--secondary-centre-key-pub: {e}") from None
    ca = _ca_pem(request, scheme == "https", request.secondary_ca_cert, "--secondary-ca-cert")
    cfg: dict[str, object] = {"secondary_receiver": request.secondary_server,
                              "secondary_centre_key": key.hex()}
    if ca is not None:
        cfg["secondary_ca_cert"] = CA2_FILE
    return cfg, ca


# --------------------------------------------------------------------------
# Provisioning and key rotation.


def _replace_key(target: DeviceSession, dev: DeviceLink, config_text: str | None,
                 register: Callable[[bytes], T], reset: bool, keep: list[str] | None
                 ) -> tuple[bytes, T, list[str]]:
    """Make the device's new key (writing config_text first, if given), register it,
    then make the change final on the device; a failure before that undoes it there."""
    try:
        new_key = target.new_key(config_text)
        registered = register(new_key)
    except BaseException:
        target.undo()
        raise
    target.commit()
    removed = target.clean(keep) if keep is not None else []
    if reset:
        dev.soft_reset_and_run()
    return new_key, registered, removed


def provision(port: str, request: ProvisionRequest, db_path: str | Path, *, force: bool = False,
              queue: QueuePolicy = KEEP_QUEUE, link: DeviceLink | None = None, reset: bool = True,
              export_pubkey: str | Path | None = None) -> KeyChange:
    """Configure the device at `port` with the centre's trust anchors, let it make
    its key, register the public key (see module doc).

    Refuses (AlreadyProvisioned) a device that has a key, or an id whose key
    the registry already trusts, unless force: then the old key is revoked and
    the device starts from a clean identity.
    """
    kid = parse_device_id(request.device_id)
    name = format_device_id(kid)
    by = f"sotto provision ({_who()})"
    if not request.server:
        raise UsageError("give --server https://HOST[:PORT] (the monitoring centre's receiver)")
    scheme, _host, _port = check_receiver_url(request.server)
    with closing(_open_registry(db_path, request.new_registry)) as reg:
        record = reg.find(kid)
        if record is not None and record.active_key is not None and not force:
            raise AlreadyProvisioned(
                f"device {name} is already registered with key {record.active_key.fingerprint}; "
                "to give it a new key (the old one is revoked), run again with --force")
        centre = _centre_public_key(request, reg)
        ca = _ca_pem(request, scheme == "https")
        cfg = _config_for(request, kid, centre, ca)
        second, ca2 = _secondary(request)
        cfg.update(second)
        dev = link or DeviceLink.open(port)
        try:
            target = DeviceSession(dev)
            if target.has_key and not force:
                found = config_state.describe(target.config_text)
                fp = key_fingerprint(target.key) if target.key else "damaged"
                held = (f"device id {found.device_id}, key {fp}" if found.state == "ok"
                        else f"key {fp}, with {found.detail.split(';')[0]}")
                raise AlreadyProvisioned(
                    f"the device at {port} is already provisioned ({held}); "
                    "to provision it again (a new key; the old one is revoked) add --force")
            drained, discarded = settle_queue(target, queue, centre, reg.connection, kid, port,
                                               "provision --force") if target.has_key else (None, 0)
            if ca is not None:
                target.put_file(CA_FILE, ca)
            if ca2 is not None:
                target.put_file(CA2_FILE, ca2)
            text = target.check_config(cfg)
            old_key = target.key
            old_kid = _config_kid(target.config)

            def register(key: bytes) -> tuple[str, ...]:   # settings first: a failure leaves no key trusted
                devcfg.record_provisioned(reg.connection, kid, request.settings, by=by)   # the silent list
                return _register(reg, kid, key, request.officer, old_kid, old_key, by)

            keep = _KEEP + ([CA_FILE] if ca is not None else []) + ([CA2_FILE] if ca2 is not None else [])
            new_key, revoked, removed = _replace_key(target, dev, text, register, reset, keep)
        finally:
            if link is None:
                dev.close()
    if export_pubkey is not None:
        export_public_key(new_key, export_pubkey)
    return KeyChange(name, new_key, key_fingerprint(new_key), revoked, json.loads(text), drained, discarded,
                     removed)


def export_public_key(public_key: bytes, path: str | Path) -> None:
    """The device's public key as a PEM file, for `sotto devices add --pubkey FILE` at another centre."""
    Path(path).write_text(centre_key.public_pem(public_key))


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


def rotate_key(port: str, db_path: str | Path, *, queue: QueuePolicy = KEEP_QUEUE,
               link: DeviceLink | None = None, reset: bool = True) -> KeyChange:
    """Make a new key on the device, register it and revoke the old one; refused
    while the device holds frames or a live alert (see QueuePolicy)."""
    by = f"sotto rotate-key ({_who()})"
    with closing(_open_registry(db_path, False)) as reg:
        dev = link or DeviceLink.open(port)
        try:
            target = DeviceSession(dev)
            kid = _config_kid(target.config)
            if kid is None or target.key is None:
                what = (f"no usable key ({target.key_error})" if kid is not None
                        else config_state.describe(target.config_text).detail.split(";")[0])
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
            drained, discarded = settle_queue(target, queue, centre_key.recorded_public_key(reg.connection),
                                               reg.connection, kid, port, "rotate-key")
            new_key, _, _ = _replace_key(target, dev, None, lambda key: reg.rotate(kid, key, by=by), reset,
                                         None)
        finally:
            if link is None:
                dev.close()
    return KeyChange(name, new_key, key_fingerprint(new_key), (key_fingerprint(target.key),), target.config,
                     drained, discarded)
