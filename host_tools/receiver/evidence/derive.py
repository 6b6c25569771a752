"""What export and verification both compute, and must compute exactly alike: the
chain analysis, the WAV, the GeoJSON track, the report; the bundle's file names."""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from host_tools.adpcm import AdpcmError, decode
from host_tools.errors import SottoError
from host_tools.frames import (
    SOURCE_NAMES,
    Frame,
    FrameType,
)
from host_tools.ids import format_device_id
from host_tools.receiver.alerts import iso_utc
from host_tools.registry import key_fingerprint

BUNDLE_FORMAT = "sotto-evidence/2"   # 2: sealed by the centre (seal.py)
FRAMES_FILE, WAV_FILE, TRACK_FILE = "frames.cbor", "audio.wav", "track.geojson"
KEY_FILE, REPORT_FILE, HTML_FILE = "device-key.pem", "report.json", "report.html"
MANIFEST_FILE = "manifest.json"
MAX_AUDIO_SECONDS = 2 * 3600     # a WAV longer than this is refused (a device's offsets are its own)


class EvidenceError(SottoError, ValueError):
    """An export that cannot be made (no such alert, purged, folder not empty)."""


# --------------------------------------------------------------------------
# Shared by export and verification: both must compute exactly the same.


@dataclass
class ChainAnalysis:
    """The hash chain of a set of frames of one alert, from the frames alone."""

    order: list[Frame]                  # the chain from alert-start, then frames off it (by seq)
    labels: dict[bytes, str]            # frame link -> its place in the chain, for people
    state: str                          # complete | open | gap | broken
    problems: list[str]

    @property
    def summary(self) -> str:
        if self.problems:
            return f"{self.state}: " + "; ".join(self.problems)
        if self.state == "complete":
            return f"complete: {len(self.order)} frames, one unbroken chain from alert-start to " \
                   f"{self.order[-1].type.label}"
        return f"unbroken so far: {len(self.order)} frames from alert-start, no end frame"


def analyse_chain(frames: Sequence[Frame]) -> ChainAnalysis:
    """Order frames along their `prev` links and say what is missing or wrong."""
    by_seq = sorted(frames, key=lambda f: (f.seq, f.link))
    links = {f.link for f in by_seq}
    successors: dict[bytes, list[Frame]] = {}
    for f in by_seq:
        if f.prev is not None:
            successors.setdefault(f.prev, []).append(f)
    starts = [f for f in by_seq if f.type == FrameType.ALERT_START]
    broken: list[str] = []
    gaps: list[str] = []
    labels: dict[bytes, str] = {}
    order: list[Frame] = []
    if len(starts) > 1:
        broken.append(f"{len(starts)} alert-start frames (seq {', '.join(str(f.seq) for f in starts)})")
    for nexts in sorted(successors.values(), key=lambda fs: fs[0].seq):
        if len(nexts) > 1:
            seqs = ", ".join(str(f.seq) for f in nexts)
            broken.append(f"frames seq {seqs} all claim the same previous frame")
    ends = [f for f in by_seq if f.type == FrameType.END and f.link in successors]
    for f in ends:
        seqs = ", ".join(str(g.seq) for g in successors[f.link])
        broken.append(f"frame seq {seqs} came after the end frame")
    if starts:
        cur: Frame | None = starts[0]
        labels[starts[0].link] = "alert-start"
        while cur is not None:
            order.append(cur)
            nexts = successors.get(cur.link, [])
            cur = nexts[0] if nexts else None
            if cur is not None:
                labels[cur.link] = f"follows seq {order[-1].seq}"
    else:
        gaps.append("the alert-start frame is missing")
    on_chain = {f.link for f in order}
    for f in by_seq:
        if f.link in on_chain:
            continue
        order.append(f)
        if f.prev is not None and f.prev not in links:
            labels[f.link] = "its previous frame is missing"
            held = [g.seq for g in by_seq if g.seq < f.seq]
            gaps.append(f"frames missing before seq {f.seq}"
                        + (f" (the frame before it that is here is seq {held[-1]})" if held else ""))
        elif f.type == FrameType.ALERT_START:
            labels[f.link] = "a second alert-start"
        else:
            before = next((g.seq for g in by_seq if g.link == f.prev), None)
            labels[f.link] = f"off the chain (also follows seq {before})" if before is not None \
                else "off the chain"
    if broken:
        state = "broken"
    elif gaps:
        state = "gap"
    elif order and order[-1].type in (FrameType.CANCEL, FrameType.END):
        state = "complete"
    else:
        state = "open"
    return ChainAnalysis(order, labels, state, broken + gaps)


@dataclass
class AudioBuild:
    """The alert's audio reassembled from its chunks."""

    pcm: array | None
    rate_hz: int | None
    chunks: int
    samples: int
    gaps: list[tuple[int, int]]         # (first sample, count) of silence where chunks are missing
    notes: list[str]
    pre_trigger_samples: int = 0        # the first samples, captured before the trigger (flag bit 4)

    @property
    def seconds(self) -> float:
        return self.samples / self.rate_hz if self.rate_hz else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "rate_hz": self.rate_hz, "samples": self.samples,
                "seconds": round(self.seconds, 3),
                "gaps": [{"first_sample": a, "samples": n, "seconds": round(n / (self.rate_hz or 1), 3)}
                         for a, n in self.gaps], "notes": self.notes,
                "pre_trigger": {"samples": self.pre_trigger_samples,
                                "seconds": round(self.pre_trigger_samples / (self.rate_hz or 1), 3),
                                "meaning": "recorded by the device before the alarm was raised (its RAM "
                                           "ring, audio.pre_trigger); the audio starts with it"}}


def build_audio(frames: Sequence[Frame]) -> AudioBuild:
    """Decode every audio chunk from its own ADPCM state into one PCM timeline
    (the chunk's `off` places it); missing stretches stay silent and are listed."""
    chunks = sorted((f for f in frames if f.type == FrameType.AUDIO),
                    key=lambda f: (f.audio_offset or 0, f.seq))
    notes: list[str] = []
    if not chunks:
        return AudioBuild(None, None, 0, 0, [], notes)
    rate = chunks[0].rate_hz or 0
    usable = []
    for f in chunks:
        if f.rate_hz != rate:
            notes.append(f"seq {f.seq}: {f.rate_hz} Hz, unlike the first chunk's {rate} Hz; left out")
            continue
        if (f.audio_offset or 0) + (f.samples or 0) > MAX_AUDIO_SECONDS * rate:
            notes.append(f"seq {f.seq}: starts {(f.audio_offset or 0) / rate:.0f} s into the alert, beyond "
                         f"the {MAX_AUDIO_SECONDS} s a bundle holds; left out")
            continue
        usable.append(f)
    total = max(((f.audio_offset or 0) + (f.samples or 0) for f in usable), default=0)
    pcm = array("h", bytes(2 * total))
    covered = bytearray(total)
    for f in usable:
        off, ns = f.audio_offset or 0, f.samples or 0
        data = f.audio or b""
        state = f.adpcm_state or (0, 0)
        if len(data) * 2 < ns:
            notes.append(f"seq {f.seq}: {ns} samples announced but {len(data)} bytes hold only "
                         f"{len(data) * 2}")
            ns = len(data) * 2
        try:
            samples, _ = decode(data, ns, state[0], state[1])
        except AdpcmError as e:
            notes.append(f"seq {f.seq}: cannot decode: {e}")
            continue
        if any(covered[off:off + ns]):
            notes.append(f"seq {f.seq}: overlaps audio already placed at sample {off}")
        pcm[off:off + ns] = samples
        covered[off:off + ns] = b"\x01" * ns
    gaps: list[tuple[int, int]] = []
    i = 0
    while i < total:
        if not covered[i]:
            j = covered.find(1, i)
            j = total if j < 0 else j
            gaps.append((i, j - i))
            i = j
        else:
            j = covered.find(0, i)
            i = total if j < 0 else j
    pre = sum(f.samples or 0 for f in usable if f.pre_trigger)
    return AudioBuild(pcm, rate, len(usable), total, gaps, notes, pre)


def build_track(frames: Sequence[Frame], alert_code: str, device: str) -> dict[str, Any]:
    """The positions as a GeoJSON FeatureCollection (RFC 7946, [lon, lat] in degrees)."""
    points = sorted((f for f in frames if f.location is not None), key=lambda f: f.seq)
    features: list[dict[str, Any]] = []
    coords = []
    for f in points:
        loc = f.location
        assert loc is not None
        pos = [loc.lon_e7 / 1e7, loc.lat_e7 / 1e7]
        coords.append(pos)
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": pos},
                         "properties": {"seq": f.seq, "frame": f.type.label, "time": iso_utc(f.time),
                                        "time_epoch": f.time, "accuracy_m": loc.accuracy_m,
                                        "fix_age_s": loc.age_s, "source": SOURCE_NAMES.get(loc.source)}})
    if len(coords) >= 2:
        features.insert(0, {"type": "Feature", "geometry": {"type": "LineString", "coordinates": coords},
                            "properties": {"alert": alert_code, "device": device, "points": len(coords)}})
    return {"type": "FeatureCollection", "features": features}


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _pem(key: bytes) -> str:
    return Ed25519PublicKey.from_public_bytes(key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def derive_report(frames: Sequence[Frame], verdicts: dict[bytes, str], public_key: bytes, device_id: bytes,
                  sid: int, alert_code: str) -> dict[str, Any]:
    """Everything in report.json that follows from the frames and the key alone."""
    chain = analyse_chain(frames)
    audio = build_audio(frames)
    positions = [{"seq": ft["properties"]["seq"], "lon": ft["geometry"]["coordinates"][0],
                  "lat": ft["geometry"]["coordinates"][1], "accuracy_m": ft["properties"]["accuracy_m"],
                  "time": ft["properties"]["time"]}
                 for ft in build_track(frames, alert_code, format_device_id(device_id))["features"]
                 if ft["geometry"]["type"] == "Point"]
    return {
        "format": BUNDLE_FORMAT,
        "alert": alert_code,
        "device": format_device_id(device_id),
        "device_hex": device_id.hex(),
        "session": sid,
        "device_key": {"ed25519": public_key.hex(), "fingerprint": key_fingerprint(public_key),
                       "pem": _pem(public_key)},
        "chain": {"state": chain.state, "summary": chain.summary, "problems": chain.problems},
        "frames": [{
            "index": i + 1, "seq": f.seq, "type": f.type.label, "time": f.time, "time_utc": iso_utc(f.time),
            "size": len(f.wire), "sha256": hashlib.sha256(f.wire).hexdigest(),
            "prev": f.prev.hex() if f.prev is not None else None, "link": f.link.hex(),
            "verdict": verdicts.get(f.wire, "valid"), "chain": chain.labels.get(f.link, ""),
            "duress": f.duress,
        } for i, f in enumerate(chain.order)],
        "audio": audio.to_json(),
        "track": {"points": len(positions), "positions": positions},
    }
