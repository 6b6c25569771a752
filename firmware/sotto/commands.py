# The centre's commands (docs/frames.md "Commands"): they arrive in an
# authenticated answer (sotto.answer; delivery hands nothing else over), each
# with an id the centre assigns, increasing per device. Each runs at most once:
# the highest id started is written to flash before the command starts, and a
# command whose id is not above it is never run again (the centre sends it in
# every answer until its reply arrives; the reply is already queued). Each is
# confirmed by a reply frame (t 10: cmd, res, and sid when it concerned an
# alert).
#
#   listening   play the listening pattern (an operator has the alert)
#   more-audio  s: extend the live alert's clip by s seconds, up to audio.max_clip_s
#   locate      a location frame now (live alert only)
#   ask         q: play question code q; the officer answers with the yes or
#               no press pattern (trigger.yes / trigger.no); no answer within
#               feedback.ask_timeout_s -> res 5. One question at a time.
#   config      v, set: configuration version v (above the applied one) with
#               settings {dotted name: value}; the device checks them with its
#               own rules (sotto.config.change), writes config.json atomically
#               and keeps it as config.good, then reports a health status frame
#               (cfgv; err with the reason when refused) before the reply.
#
# A question in progress is kept on flash with the id: after a restart it is
# answered res 5 (the officer can no longer answer it).
import struct
from binascii import crc32

from micropython import const

from sotto import frames, trigger
from sotto.log import Logger
from sotto.ticks import ticks_add, ticks_diff

STATE = "cmds"  # highest id started, the id of the question in progress (0: none), CRC-32
_FMT = ">QQ"
ID_MAX = 1 << 53
IDLE_MS = const(60000)
MORE_AUDIO_MAX_S = const(600)
SID_MAX = const(65535)

_log = Logger("commands")


def _uint(v, hi):
    return type(v) is int and 1 <= v <= hi


class Commands:
    def __init__(self, cfg, storage, emit, session, feedback, haptic=None):
        """emit(now_ms, ftype, fields) signs and queues a frame (Device._emit)."""
        self.storage = storage
        self._emit = emit
        self.session = session
        self.feedback = feedback
        self.haptic = haptic
        self.ask_timeout_ms = cfg["feedback"]["ask_timeout_s"] * 1000
        self.highest = 0  # the highest command id started
        self.ask_id = 0  # the question waiting for the officer (0: none)
        self._ask_sid = None
        self._ask_until = 0
        # configure(version, settings, now_ms) -> None when applied, else the
        # reason (text, at most 64 bytes); set by the device
        self.configure = None
        self.ran = 0
        self.ignored = 0  # commands re-sent after they started, or without a usable id
        self.answers_ignored = 0  # yes/no patterns with no question waiting

    # -- state on flash --------------------------------------------------------------
    def load(self, now_ms):
        """At boot: the highest id started; a question a restart interrupted is
        answered res 5 now."""
        raw = self.storage.read(STATE) if self.storage is not None else None
        size = struct.calcsize(_FMT)
        if raw is None or len(raw) != size + 4:
            return
        if struct.unpack(">I", raw[size:])[0] != crc32(raw[:size]) & 0xFFFFFFFF:
            # unreadable: ids below the centre's next one would run again; the
            # centre only re-sends commands without a reply, so the harm is one repeat
            _log.e("command state damaged")
            return
        self.highest, asked = struct.unpack(_FMT, raw[:size])
        if asked:
            self._reply(asked, frames.RES_NO_ANSWER, None, now_ms)
            self._save(0)

    def _save(self, ask_id):
        body = struct.pack(_FMT, self.highest, ask_id)
        self.storage.write_atomic(STATE, body + struct.pack(">I", crc32(body) & 0xFFFFFFFF))

    # -- running them ----------------------------------------------------------------
    def run(self, cmds, now_ms):
        """The commands of one authenticated answer, in id order."""
        todo = []
        for c in cmds:
            cid = c.get("id")
            if not _uint(cid, ID_MAX):
                self.ignored += 1
                _log.w("command without a usable id ignored")
                continue
            if cid > self.highest:
                todo.append((cid, c))
            else:
                self.ignored += 1  # started already: its reply is queued or on its way
        todo.sort(key=lambda x: x[0])
        for cid, c in todo:
            prev = self.highest
            self.highest = cid
            try:
                self._save(self.ask_id)  # durable before it starts: never twice
            except OSError as e:
                self.highest = prev
                _log.e("command %d not started: %s", cid, e)
                return  # the centre sends it again
            self.ran += 1
            self._start(cid, c, now_ms)

    def _start(self, cid, c, now_ms):
        op = c.get("op")
        sid = c.get("sid")
        if sid is not None and not _uint(sid, SID_MAX):
            return self._reply(cid, frames.RES_INVALID, None, now_ms)
        s = self.session
        live = s.live and (sid is None or sid == s.sid)
        _log.i("command %d: %s", cid, op)
        if op == "listening":
            if (sid is not None and not live) or not self.feedback.enabled:
                return self._reply(cid, frames.RES_REFUSED, sid, now_ms)  # nobody would feel it
            self.feedback.listening(now_ms)
            return self._reply(cid, frames.RES_DONE, sid, now_ms)
        if op == "more-audio":
            secs = c.get("s")
            if not _uint(secs, MORE_AUDIO_MAX_S):
                return self._reply(cid, frames.RES_INVALID, sid, now_ms)
            ok = live and s.more_audio(secs, now_ms)
            return self._reply(cid, frames.RES_DONE if ok else frames.RES_REFUSED, self._sid(sid), now_ms)
        if op == "locate":
            ok = live and s.locate(now_ms)
            return self._reply(cid, frames.RES_DONE if ok else frames.RES_REFUSED, self._sid(sid), now_ms)
        if op == "ask":
            q = c.get("q")
            if not _uint(q, len(self.feedback.questions)):
                return self._reply(cid, frames.RES_INVALID, sid, now_ms)
            if self.ask_id or (sid is not None and not live) or not self.feedback.enabled:
                # one question at a time; and none the officer cannot feel
                return self._reply(cid, frames.RES_REFUSED, sid, now_ms)
            self.ask_id = cid
            self._ask_sid = sid
            self._ask_until = ticks_add(now_ms, self.ask_timeout_ms)
            self._persist_ask()
            self.feedback.question(q, now_ms)
            return None
        if op == "config":
            v, settings = c.get("v"), c.get("set")
            if self.configure is None or not _uint(v, ID_MAX) or not isinstance(settings, dict):
                return self._reply(cid, frames.RES_INVALID, None, now_ms)
            err = self.configure(v, settings, now_ms)  # the status frame (cfgv / err) goes first
            return self._reply(cid, frames.RES_DONE if err is None else frames.RES_REFUSED, None, now_ms)
        return self._reply(cid, frames.RES_UNKNOWN, sid, now_ms)

    def _sid(self, sid):
        # more-audio and locate concern the live alert even when the command names none
        return sid if sid is not None else (self.session.sid if self.session.live else None)

    def _persist_ask(self):
        try:
            self._save(self.ask_id)
        except OSError as e:
            _log.e("cannot keep the question's state: %s", e)

    def _reply(self, cid, res, sid, now_ms):
        f = {frames.K_CMD: cid, frames.K_RES: res}
        if sid is not None:
            f[frames.K_SID] = sid
        self._emit(now_ms, frames.REPLY, f)

    # -- the officer's answer ------------------------------------------------------
    def answer(self, ev, now_ms):
        """A yes or no press pattern (trigger.YES / NO). True if it answered
        the question waiting; otherwise it means nothing (counted)."""
        if not self.ask_id:
            self.answers_ignored += 1
            return False
        self._close_ask(frames.RES_YES if ev == trigger.YES else frames.RES_NO, now_ms)
        if self.haptic is not None:
            self.haptic.confirm(now_ms)  # the answer was taken
        return True

    def _close_ask(self, res, now_ms):
        cid, sid = self.ask_id, self._ask_sid
        self.ask_id = 0
        self._ask_sid = None
        self._persist_ask()
        self._reply(cid, res, sid, now_ms)

    def step(self, now_ms):
        if not self.ask_id:
            return IDLE_MS
        wait = ticks_diff(self._ask_until, now_ms)
        if wait > 0:
            return wait
        _log.w("question %d unanswered", self.ask_id)
        self._close_ask(frames.RES_NO_ANSWER, now_ms)
        return IDLE_MS
