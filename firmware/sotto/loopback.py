# The loop back, wired into sotto.app.Device at boot (sotto.startup): what
# the delivery hands over from an authenticated answer (sotto.answer) reaches
# the parts here. Frames acknowledged (the observer hears them), frames the
# receiver rejected (logged), the centre's time (the clock, then the
# observer), its commands (sotto.commands: a command that fails is a fault of
# the device, never the delivery task's problem) and an alert-start it stored
# (the "received" pattern, sotto.feedback, only for the alert still live).
# One LoopBack is made at boot; its methods are the callbacks, and they
# allocate nothing of their own.
from sotto.log import Logger

_log = Logger("app")  # the device's lines, as they were before the loop back had a module of its own


class LoopBack:
    def __init__(self, dev):
        self.dev = dev

    def acked(self, seqs):
        """FrameQueue.on_ack."""
        ob = self.dev.observer
        if ob is not None:
            ob.frames_acked(seqs)

    def rejected(self, seq, reason):
        _log.e("receiver rejected frame %d: %s", seq, reason)

    def network_time(self, epoch_s):
        dev = self.dev
        dev.clock.set_network(epoch_s, dev._now)
        if dev.observer is not None:
            dev.observer.time_set(epoch_s, "network")

    def run_commands(self, cmds):
        dev = self.dev
        try:
            dev.commands.run(cmds, dev._now)
        except Exception as e:  # noqa: BLE001 - never the delivery task's problem
            dev._fault("commands", e)

    def start_acked(self, sid):
        dev = self.dev
        s = dev.session
        if s.live and s.sid == sid:
            dev.feedback.start_acked(sid, dev._now)
