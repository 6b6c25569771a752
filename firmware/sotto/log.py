# A print-based logger with levels and a per-subsystem prefix: "[modem] E: ...".
#
# The sink is replaceable (the simulator collects lines into its timeline). Never
# pass key material to a logger: log ids and lengths, not secrets.
from micropython import const

ERROR = const(1)
WARN = const(2)
INFO = const(3)
DEBUG = const(4)

_LETTER = "?EWID"


class _State:
    level = INFO
    sink = None  # type: object


def set_level(level):
    _State.level = level


def set_sink(sink):
    """sink(line) receives each formatted line; None restores print."""
    _State.sink = sink


class Logger:
    def __init__(self, prefix):
        self.prefix = prefix

    def _emit(self, level, msg, args):
        if level > _State.level:
            return
        if args:
            msg = msg % args
        line = "[%s] %s: %s" % (self.prefix, _LETTER[level], msg)
        sink = _State.sink
        if callable(sink):
            sink(line)
        else:
            print(line)

    def e(self, msg, *args):
        self._emit(ERROR, msg, args)

    def w(self, msg, *args):
        self._emit(WARN, msg, args)

    def i(self, msg, *args):
        self._emit(INFO, msg, args)

    def d(self, msg, *args):
        self._emit(DEBUG, msg, args)
