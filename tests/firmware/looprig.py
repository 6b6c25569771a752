# The whole device (sotto.app.Device over the fake HAL) with the modem double
# of deliveryfake in place of the SIMCom driver, talking to the signing fake
# centre: the loop from the officer's button to the centre and back to the
# wrist, in both interpreters.
from deliveryfake import FakeModem, FakeServer, centre_key
from fakehal import FakeHal, config, nmea
from fwtest import tmpdir
from sotto import frames, identity
from sotto.app import Device
from sotto.storage import Storage
from sotto.ticks import ticks_add, ticks_diff

FIX = (nmea("GNRMC,143000.00,A,5127.2700,N,00235.2740,W,0.8,45.0,221126,,,A")
       + nmea("GNGGA,143000.00,5127.2700,N,00235.2740,W,1,07,0.8,12.3,M,49.6,M,,"))
CA_PEM = b"-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n"


def trusted(**over):
    """A device configuration with the trust anchors: the test centre's key and a CA file."""
    c = config(centre_key=centre_key()[1].hex(), ca_cert="ca.pem")
    c.update(over)
    return c


class LoopRig:
    def __init__(self, root=None, ca=True, **cfg):
        self.root = root or tmpdir("loop")
        self.hal = FakeHal(self.root)
        st = Storage(self.root)
        if st.read("identity.key") is None:
            identity.create(st, self.hal.random_bytes)
        if ca:
            st.write_atomic("ca.pem", CA_PEM)
        self.pub = identity.public_key(st)
        self.cfg = trusted(**cfg)
        self.server = FakeServer(None)
        self.t = 0
        self.gnss = True
        self.boot()

    def boot(self):
        self.hal.set_time(self.t)
        self.dev = Device(self.hal, self.cfg)
        assert self.dev.boot(self.t), self.dev.error
        # the modem double in place of the SIMCom driver, on the device's own scheduler
        self.modem = FakeModem(self.dev.sched, self.server)
        self.dev.delivery.modem = self.modem
        self.dev.delivery.sms.modem = self.modem

    def run_until(self, cond, limit_ms=300000):
        end = ticks_add(self.t, limit_ms)
        while not cond():
            if ticks_diff(self.t, end) >= 0:
                raise AssertionError("not done after %d ms" % limit_ms)
            self.step()

    def run(self, ms):
        end = ticks_add(self.t, ms)
        while ticks_diff(end, self.t) > 0:
            self.step(ticks_diff(end, self.t))

    def step(self, most=1000):
        if self.gnss and self.t % 1000 < 20 and self.hal.gnss_on:
            self.hal.gnss_uart.rx += FIX
        self.hal.set_time(self.t)
        wait = self.dev.step(self.t)
        self.modem._deliver()
        self.t = ticks_add(self.t, max(1, min(wait, 200, most)))

    # -- the officer ------------------------------------------------------------------
    def sos(self):
        self.hal.press(self.t + 10, 3200)
        self.run(3500)
        assert self.dev.session.live
        return self.dev.session.sid

    def presses(self, n):
        for i in range(n):
            self.hal.press(self.t + 10 + 300 * i, 100)

    # -- what the centre saw ----------------------------------------------------------
    def received(self, ftype):
        """Payloads of frames of this type the centre got (each once)."""
        out = {}
        for seq, payload in self.server.seen:
            if payload[frames.K_T] == ftype:
                out[seq] = payload
        return [out[s] for s in sorted(out)]

    def replies(self):
        return [(p[frames.K_CMD], p[frames.K_RES], p.get(frames.K_SID)) for p in self.received(frames.REPLY)]

    def queued(self, ftype):
        out = []
        for _seq, wire in self.dev.queue.batch(10000, 10 ** 8):
            f = frames.verify(wire, self.pub)[1]
            if f[frames.K_T] == ftype:
                out.append(f)
        return out
