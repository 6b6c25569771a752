"""The writer's SQL: one statement per kind of row, written in bulk per group commit."""

from __future__ import annotations

import struct

from host_tools.frames import FrameType

_INSERT_FRAME = (
    "INSERT INTO frames(device_id, key_id, seq, digest, type, sid, alert_id, time, up_ms, flags, link, "
    "prev, received_at, via, peer, size, lat_e7, lon_e7, acc_m, age_s, src, battery, audio_off, audio_ns, "
    "audio_rate, wire) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
# All expressions of an UPDATE see the row as it was, so the conditions below
# compare with the old start_seq / end_seq / battery_seq. (SQL for both backends:
# CASE, not SQLite's two-argument max(); ON CONFLICT's columns named with their table;
# a parameter tested for NULL is given its type, as prepared statements on PostgreSQL need.)
_NEWER_START = "(CAST(:start_seq AS BIGINT) IS NOT NULL AND (start_seq IS NULL OR start_seq > :start_seq))"
_NEWER_END = "(CAST(:end_seq AS BIGINT) IS NOT NULL AND (end_seq IS NULL OR end_seq < :end_seq))"
_NEWER_BATT = "(CAST(:batt_seq AS BIGINT) IS NOT NULL AND (battery_seq IS NULL OR battery_seq < :batt_seq))"
_ALERT_UPDATE = (
    "UPDATE alerts SET frames = frames + :frames, starts = starts + :starts, "
    "dangling = dangling + :dangling, "
    "forks = forks + :forks, seq_reused = seq_reused + :reused, audio_frames = audio_frames + :audio_frames, "
    "audio_samples = audio_samples + :audio_samples, audio_rate = coalesce(:audio_rate, audio_rate), "
    "duress = CASE WHEN :duress > duress THEN :duress ELSE duress END, "
    "duress_at = CASE WHEN :duress = 1 AND duress_at IS NULL THEN :now ELSE duress_at END, "
    "last_received_at = CASE WHEN :now > last_received_at THEN :now ELSE last_received_at END, "
    f"started_at = CASE WHEN {_NEWER_START} THEN :started_at ELSE started_at END, "
    f"trigger = CASE WHEN {_NEWER_START} THEN :trigger ELSE trigger END, "
    f"start_received_at = CASE WHEN {_NEWER_START} THEN :now ELSE start_received_at END, "
    f"start_seq = CASE WHEN {_NEWER_START} THEN :start_seq ELSE start_seq END, "
    f"end_type = CASE WHEN {_NEWER_END} THEN :end_type ELSE end_type END, "
    f"end_why = CASE WHEN {_NEWER_END} THEN :end_why ELSE end_why END, "
    f"ended_at = CASE WHEN {_NEWER_END} THEN :now ELSE ended_at END, "
    f"end_seq = CASE WHEN {_NEWER_END} THEN :end_seq ELSE end_seq END, "
    f"battery = CASE WHEN {_NEWER_BATT} THEN :battery ELSE battery END, "
    f"battery_seq = CASE WHEN {_NEWER_BATT} THEN :batt_seq ELSE battery_seq END "
    "WHERE alert_id = :alert_id")
_DEVICE_STATE = (
    "INSERT INTO device_state(device_id, last_seen_at, last_seq, last_type, last_via, frames, "
    "heartbeat_s, heartbeat_at, battery, battery_at, status, status_at, dropped_total) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at, "
    "last_seq = excluded.last_seq, last_type = excluded.last_type, last_via = excluded.last_via, "
    "frames = device_state.frames + excluded.frames, "
    "heartbeat_s = coalesce(excluded.heartbeat_s, device_state.heartbeat_s), "
    "heartbeat_at = coalesce(excluded.heartbeat_at, device_state.heartbeat_at), "
    "battery = coalesce(excluded.battery, device_state.battery), "
    "battery_at = coalesce(excluded.battery_at, device_state.battery_at), "
    "status = coalesce(excluded.status, device_state.status), "
    "status_at = coalesce(excluded.status_at, device_state.status_at), "
    "dropped_total = device_state.dropped_total + excluded.dropped_total")
_DEVICE_TRUST = (
    "INSERT INTO device_trust(device_id, insecure_tls, insecure_frames, insecure_at, unauth, unauth_at) "
    "VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(device_id) DO UPDATE SET insecure_tls = excluded.insecure_tls, "
    "insecure_frames = device_trust.insecure_frames + excluded.insecure_frames, "
    "insecure_at = coalesce(excluded.insecure_at, device_trust.insecure_at), "
    "unauth = coalesce(excluded.unauth, device_trust.unauth), "
    "unauth_at = coalesce(excluded.unauth_at, device_trust.unauth_at)")
_INSERT_REJECTION = ("INSERT INTO rejections(at, via, peer, device_id, seq, reason, detail, size, digest) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
# Frame types as plain ints for the hot path (FrameType(...) builds an enum member each time).
_ALERT_START, _AUDIO = int(FrameType.ALERT_START), int(FrameType.AUDIO)
_DURESS, _END = int(FrameType.DURESS), int(FrameType.END)
_HEARTBEAT, _STATUS = int(FrameType.HEARTBEAT), int(FrameType.STATUS)
_REPLY = int(FrameType.REPLY)
_INSECURE_TLS = 8            # flag bit 3
_TERMINAL = (int(FrameType.CANCEL), _END)
_LOCATION = struct.Struct(">iiHHB")
