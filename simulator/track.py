"""Tracks for the virtual GNSS: GPX (<trkpt lat= lon=><time>) or GeoJSON
(a LineString or Point features, optional "times" in seconds from the start).
A track is a list of (t_s, lat, lon); positions in between are interpolated."""

from __future__ import annotations

import bisect
import datetime
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import SottoError


class TrackError(SottoError, ValueError):
    """A track file that cannot be used."""

    exit_code = 2  # `sotto sim run`: the scenario cannot run (1 is for a failed expectation)


@dataclass(frozen=True)
class Track:
    points: tuple[tuple[float, float, float], ...]  # (t_s, lat, lon), t ascending

    def at(self, t_s: float) -> tuple[float, float]:
        pts = self.points
        if t_s <= pts[0][0]:
            return pts[0][1], pts[0][2]
        if t_s >= pts[-1][0]:
            return pts[-1][1], pts[-1][2]
        i = bisect.bisect_right([p[0] for p in pts], t_s)
        (t0, a0, o0), (t1, a1, o1) = pts[i - 1], pts[i]
        f = (t_s - t0) / (t1 - t0) if t1 > t0 else 0.0
        return a0 + (a1 - a0) * f, o0 + (o1 - o0) * f


def standing(lat: float, lon: float) -> Track:
    return Track(((0.0, lat, lon),))


def load_track(path: str | Path, speed_mps: float = 1.4) -> Track:
    """A GPX or GeoJSON file. Points without times are spaced at walking speed."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise TrackError(f"cannot read track {p}: {e.strerror}") from None
    if p.suffix.lower() == ".gpx":
        pts = _gpx(text, p)
    elif p.suffix.lower() in (".geojson", ".json"):
        pts = _geojson(text, p)
    else:
        raise TrackError(f"track {p}: use a .gpx or .geojson file")
    if not pts:
        raise TrackError(f"track {p} has no points")
    return Track(tuple(_timed(pts, speed_mps)))


def _gpx(text: str, p: Path) -> list[tuple[float | None, float, float]]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise TrackError(f"track {p} is not valid GPX: {e}") from None
    out: list[tuple[float | None, float, float]] = []
    t0 = None
    for el in root.iter():
        if el.tag.split("}")[-1] not in ("trkpt", "wpt", "rtept"):
            continue
        lat, lon = float(el.attrib["lat"]), float(el.attrib["lon"])
        t = None
        for child in el:
            if child.tag.split("}")[-1] == "time" and child.text:
                ts = datetime.datetime.fromisoformat(child.text.strip().replace("Z", "+00:00")).timestamp()
                t0 = ts if t0 is None else t0
                t = ts - t0
        out.append((t, lat, lon))
    return out


def _geojson(text: str, p: Path) -> list[tuple[float | None, float, float]]:
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise TrackError(f"track {p} is not valid JSON: {e}") from None
    feats = obj.get("features", [obj]) if isinstance(obj, dict) else []
    out: list[tuple[float | None, float, float]] = []
    for f in feats:
        geom = f.get("geometry", f)
        times = (f.get("properties") or {}).get("times")
        coords = geom.get("coordinates", [])
        if geom.get("type") == "Point":
            coords = [coords]
        for i, c in enumerate(coords):
            t = float(times[i]) if times and i < len(times) else None
            out.append((t, float(c[1]), float(c[0])))
    return out


def _timed(pts: list[tuple[float | None, float, float]], speed: float) -> list[tuple[float, float, float]]:
    import math

    out: list[tuple[float, float, float]] = []
    t = 0.0
    for i, (ts, lat, lon) in enumerate(pts):
        if ts is not None:
            t = ts
        elif i:
            _, la, lo = out[-1]
            dy = (lat - la) * 111_320
            dx = (lon - lo) * 111_320 * math.cos(math.radians(lat))
            t = out[-1][0] + math.hypot(dx, dy) / speed
        out.append((t, lat, lon))
    return out
