"""What the alert queries return: alert summaries and details, chain status, track points,
silent devices (records, with their JSON form); the alert states and errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from host_tools.errors import SottoError
from host_tools.frames import END_REASON_NAMES, SOURCE_NAMES, TRIGGER_NAMES, FrameType
from host_tools.ids import format_device_id
from host_tools.receiver.format import duration_text, iso_utc
from host_tools.receiver.store import alert_code

DEFAULT_GRACE_S = 300          # a heartbeat may be this late before the device counts as silent
PROVISIONED_HEARTBEAT_S = 900  # firmware sotto.config heartbeat_every_s: expected if nothing better is known
MIN_HEARTBEAT_S = 60           # the firmware's smallest heartbeat_every_s
# where the interval a device is judged by comes from (ExpectedHeartbeat, SilentDevice)
FROM_HEARTBEAT, FROM_CONFIGURED, FROM_PROVISIONED, FROM_PENDING, FROM_DEFAULT = (
    "heartbeat", "configured", "provisioned", "pending", "default")
MAX_OUTCOME_CHARS = 2000
COMPLETE, OPEN, GAP, BROKEN = "complete", "open", "gap", "broken"


class AlertNotFoundError(SottoError, LookupError):
    """No alert with that id."""


class AlertStateError(SottoError, ValueError):
    """The alert is not in a state that allows this (already closed, ...)."""


# --------------------------------------------------------------------------
# Records.


@dataclass(frozen=True)
class ChainStatus:
    """The hash chain of one alert (see module doc)."""

    state: str
    summary: str
    problems: tuple[str, ...] = ()
    gap_before: tuple[int, ...] = ()     # seqs of frames whose predecessor is missing

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "summary": self.summary, "problems": list(self.problems),
                "gap_before_seq": list(self.gap_before)}


@dataclass(frozen=True)
class AlertSummary:
    """One alert, without location or audio content (listing needs no audit)."""

    alert_id: int
    device_id: bytes
    key_id: int
    sid: int
    officer: str | None
    state: str
    started_at: int | None          # the device's clock at alert-start (epoch s)
    first_received_at: float
    last_received_at: float
    trigger: int | None
    duress: bool
    duress_at: float | None
    frames: int
    audio_frames: int
    audio_samples: int
    audio_rate: int | None
    battery: int | None
    end_type: int | None
    end_why: int | None
    ended_at: float | None
    acked_by: str | None
    acked_at: float | None
    closed_by: str | None
    closed_at: float | None
    outcome: str | None
    seq_reused: int
    purged_at: float | None
    chain: ChainStatus
    insecure_tls: bool = False      # a frame of it had flag bit 3: the device did not authenticate the centre
    hold: Any = None                # host_tools.receiver.holds.Hold while the alert is on hold
    flags: tuple[Any, ...] = ()     # flags.AlertFlag: clock far off, signed before revocation

    @property
    def code(self) -> str:
        return alert_code(self.alert_id)

    @property
    def device(self) -> str:
        return format_device_id(self.device_id)

    @property
    def start_time(self) -> float:
        """When the alert began: the device's clock, else when the receiver first heard of it."""
        return float(self.started_at or self.first_received_at)

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.audio_rate if self.audio_rate else 0.0

    @property
    def trigger_name(self) -> str:
        if self.trigger is None:
            return "unknown (alert-start not received)"
        return TRIGGER_NAMES.get(self.trigger, str(self.trigger))

    @property
    def ended_text(self) -> str | None:
        """What the device said about the end, if anything."""
        if self.end_type == FrameType.CANCEL:
            return "cancelled by the officer (false alarm)"
        if self.end_type == FrameType.END:
            return "ended: " + END_REASON_NAMES.get(self.end_why or 0, f"reason {self.end_why}")
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.code, "number": self.alert_id, "device": self.device, "session": self.sid,
            "officer": self.officer, "state": self.state, "duress": self.duress,
            "started": iso_utc(self.start_time), "started_epoch": self.start_time,
            "start_time_source": "device" if self.started_at else "receiver",
            "first_received": iso_utc(self.first_received_at),
            "last_received": iso_utc(self.last_received_at),
            "trigger": TRIGGER_NAMES.get(self.trigger or 0) if self.trigger else None,
            "frames": self.frames, "audio_seconds": round(self.audio_seconds, 3), "battery": self.battery,
            "ended_on_device": self.ended_text, "acknowledged_by": self.acked_by,
            "acknowledged": iso_utc(self.acked_at), "closed_by": self.closed_by,
            "closed": iso_utc(self.closed_at),
            "outcome": self.outcome, "chain": self.chain.to_json(), "seq_reused": self.seq_reused,
            "purged": iso_utc(self.purged_at), "insecure_tls": self.insecure_tls,
            "hold": self.hold.to_json() if self.hold is not None else None,
            "flags": [f.to_json() for f in self.flags],
        }


@dataclass(frozen=True)
class TrackPoint:
    """One position of an alert's track."""

    seq: int
    frame_type: int
    time: int                 # the frame's time (device clock), 0 unknown
    received_at: float
    lat_e7: int
    lon_e7: int
    accuracy_m: int
    age_s: int                # fix age when the frame was made
    source: int

    @property
    def lat(self) -> float:
        return self.lat_e7 / 1e7

    @property
    def lon(self) -> float:
        return self.lon_e7 / 1e7

    @property
    def fix_time(self) -> float:
        """When the fix was taken (the frame's time minus the fix age; receive time if unknown)."""
        return (self.time or self.received_at) - self.age_s

    @property
    def source_name(self) -> str:
        return SOURCE_NAMES.get(self.source, str(self.source))

    def to_json(self, now: float) -> dict[str, Any]:
        return {"seq": self.seq, "type": FrameType(self.frame_type).label, "lat": self.lat, "lon": self.lon,
                "lat_e7": self.lat_e7, "lon_e7": self.lon_e7, "accuracy_m": self.accuracy_m,
                "fix_age_s": self.age_s, "source": self.source_name, "fix_time": iso_utc(self.fix_time),
                "age_now_s": round(now - self.fix_time), "frame_time": iso_utc(self.time),
                "received": iso_utc(self.received_at)}


@dataclass(frozen=True)
class AlertDetail:
    """What `sotto alerts show` prints (audited: it includes location)."""

    alert: AlertSummary
    track: list[TrackPoint]
    frame_counts: dict[str, int]
    rejected_since_start: dict[str, int]
    last_seen_at: float | None
    now: float
    audit_id: int = 0
    sms_frames: int = 0
    commands: list[Any] = field(default_factory=list)   # host_tools.receiver.commands.Command, oldest first
    pre_trigger_samples: int = 0   # audio captured before the trigger (flag bit 4): the device's RAM ring
    delivered_via: str | None = None   # "primary" / "secondary" (the second path), None: one path

    @property
    def location(self) -> TrackPoint | None:
        """The latest position (by sequence number)."""
        return self.track[-1] if self.track else None

    def to_json(self) -> dict[str, Any]:
        out = self.alert.to_json()
        loc = self.location
        out["location"] = loc.to_json(self.now) if loc else None
        out["track"] = [p.to_json(self.now) for p in self.track]
        out["frame_counts"] = self.frame_counts
        out["frames_by_sms"] = self.sms_frames
        out["rejected_from_device_since_start"] = self.rejected_since_start
        out["device_last_seen"] = iso_utc(self.last_seen_at)
        out["commands"] = [c.to_json() for c in self.commands]
        rate = self.alert.audio_rate or 0
        out["pre_trigger_audio_seconds"] = round(self.pre_trigger_samples / rate, 3) if rate else 0.0
        out["delivered_via"] = self.delivered_via
        return out


@dataclass(frozen=True)
class ExpectedHeartbeat:
    """The heartbeat interval the centre expects of a device, and where it comes
    from (host_tools.receiver.devcfg.expected_heartbeats): `heartbeat` (what its
    last heartbeat said), `configured` (the newest remote configuration version the
    device applied, after its last heartbeat if it had one), `provisioned` (`sotto
    provision --set`), `pending` (a change the device may or may not run yet: the
    longer of the intervals before and after it, so that a healthy device is not
    called silent early), `default` (the firmware's)."""

    seconds: int
    source: str = FROM_DEFAULT
    version: int | None = None      # the configuration version (configured, pending)
    # when that version was applied (or sent, pending): the firmware restarts its heartbeat
    # timer at a change, so the next heartbeat is due `seconds` after the later of this and
    # the device's last contact
    since: float | None = None

    def due_from(self, last_contact: float) -> float:
        """When the interval starts: the later of the last contact and `since`."""
        return last_contact if self.since is None else max(last_contact, self.since)

    def overdue_s(self, last_contact: float, now: float) -> float:
        """How long past this interval the next heartbeat is at `now` (negative: not yet due)."""
        return now - self.due_from(last_contact) - self.seconds

    @property
    def text(self) -> str:
        """For people: `the configured 5 min (version 2)`, `the default 15 min`."""
        d = duration_text(self.seconds)
        if self.source == FROM_HEARTBEAT:
            return f"heartbeat every {d}"
        if self.source == FROM_CONFIGURED:
            return f"the configured {d} (version {self.version})"
        if self.source == FROM_PENDING:
            return (f"{d}, the longer of the intervals before and after configuration version "
                    f"{self.version}, which the device has not confirmed")
        return f"the {self.source} {d}"


DEFAULT_HEARTBEAT = ExpectedHeartbeat(PROVISIONED_HEARTBEAT_S)


@dataclass(frozen=True)
class SilentDevice:
    """A device whose heartbeat is overdue."""

    device_id: bytes
    officer: str | None
    last_seen_at: float
    heartbeat_s: int
    overdue_s: float
    battery: int | None
    never_heard: bool = False   # registered, nothing ever arrived: last_seen_at is when it was registered
    no_heartbeat_yet: bool = False   # heard, but no heartbeat (with its interval) yet: the expected one
    heartbeat_from: str = FROM_HEARTBEAT   # where heartbeat_s comes from (ExpectedHeartbeat)
    config_version: int | None = None      # the configuration version it comes from, if one

    @property
    def interval_text(self) -> str:
        """heartbeat_s and where it comes from, for people: `the configured 5 min (version 2)`."""
        return ExpectedHeartbeat(self.heartbeat_s, self.heartbeat_from, self.config_version).text

    @property
    def device(self) -> str:
        return format_device_id(self.device_id)

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "officer": self.officer,
                "last_seen": None if self.never_heard else iso_utc(self.last_seen_at),
                "registered": iso_utc(self.last_seen_at) if self.never_heard else None,
                "never_heard": self.never_heard,
                "heartbeat_s": self.heartbeat_s, "no_heartbeat_yet": self.no_heartbeat_yet,
                "heartbeat_from": self.heartbeat_from, "config_version": self.config_version,
                "overdue_s": round(self.overdue_s), "battery": self.battery}
