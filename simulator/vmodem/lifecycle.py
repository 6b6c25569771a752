"""The virtual modem's life: power and PWRKEY, the boot order, the SIM, registration
(a mixin of VirtualModem).

Power follows the A7670 hardware design manual V1.06 (3.2, Tables 11-12): PWRKEY
low >= 50 ms switches the module on (at the release); held >= 2.5 s it switches a
running module off (when the 2.5 s have passed, still held); a power-down takes
about 2 s, during which the module hears neither the UART nor the key, and a press
that starts less than 2 s after it went off is ignored. AT+CPOF answers OK within
its Max Response Time of 9 s (AT manual V1.09 3.2.5), then powers down the same way.
A module hung with `hang_needs_reset` would need its RESET line (HD 3.2.3), which
the board's HAL does not wire: here only a power removal (`cut_power`) clears it.

Boot order: `*ATREADY: 1` (A76XX; SIM7600: `RDY`), then `+CPIN: READY` (or
`+CPIN: SIM REMOVED`), `SMS DONE`, `PB DONE`. Until `SMS DONE` SIM commands answer
`+CME ERROR: 14` (SIM busy) and SMS commands `+CMS ERROR: 500` (AT manual 28.3,
28.4). The same after AT+CFUN=1.

Registration on LTE Cat-1 (3GPP TS 27.007 +CEREG / +CREG): CEREG is the EPS (data)
domain; CREG is what the network grants for circuit-switched services over LTE:
1 / 5 with a combined attach, 6 / 7 "registered for SMS only" with `sms_only`.
The PDP context 1 (AT+CGDCONT, kept in NVRAM) is used at attach: an APN written
later takes effect at the next attach (AT manual 5.2.5).
"""

from __future__ import annotations


class Lifecycle:
    """VirtualModem's power, boot and registration (a mixin: it uses the modem's clock,
    faults and UART)."""

    def _key_listens(self) -> bool:
        if self.faults.hang_needs_reset or self.power == "stopping":
            return False
        if self.power == "off" and self._off_at is not None:
            return self.now - self._off_at >= self.timing.off_on_ms
        return True

    def _boot(self) -> None:
        self.power = "booting"
        self.power_ons += 1
        self._reset_state()
        self._out.clear()
        self._at(self.timing.boot_ms, self._booted)

    def _booted(self) -> None:
        if self.power != "booting":
            return
        self.power = "on"
        self._tx_free = float(self.now)
        self._line("*ATREADY: 1" if self.model == "A7670" else "RDY")
        self.radio = True
        self._at(self.timing.sim_ms, self._sim_up, self._radio_gen)
        self._arm_garbage()

    def _power_on_now(self) -> None:
        """Start already on, SIM ready and (faults permitting) registered."""
        self.power = "on"
        self.power_ons += 1
        self.radio = True
        self.sim_ready = self.sms_ready = not self.faults.sim_missing
        self.echo = False
        self.cmee = 1
        self.reg_stat, self.cs_stat = self._targets()
        if self.registered:
            self.attached_apn = self.contexts.get(1, ("IP", ""))[1]
        self._arm_garbage()

    def _long_press(self, press_id: int) -> None:
        if press_id == self._press_id and self._press_at is not None and self.power == "on":
            self._shut_down(0, "NORMAL POWER DOWN")

    def _shut_down(self, after_ms: float, *last_words: str) -> None:
        """A power-down (PWRKEY held, or AT+CPOF): deaf at once; `last_words` after
        `after_ms`, then off after power_off_ms."""
        self.power = "stopping"
        self._mode = "cmd"
        self.close()
        self._events.clear()  # nothing said before the power-down can come after it
        self._garbage_armed = False

        def finish() -> None:
            for line in last_words:
                self._line(line)
            self._at(self.timing.power_off_ms, self._off)

        self._at(after_ms, finish)

    def _off(self) -> None:
        if self.power != "off":
            self.power_offs += 1
        self.power = "off"
        self._off_at = self.now
        self.faults.hang = False  # a power cycle cures a (PWRKEY-curable) hung module
        self.close()
        self._events.clear()
        self._garbage_armed = False
        self._out = [o for o in self._out if o[0] <= self.now]
        self._reset_state()

    def _reboot_now(self) -> None:
        self.close()
        self._events.clear()
        self._garbage_armed = False
        self._boot()

    def _sim_up(self, gen: int) -> None:
        if self.power != "on" or gen != self._radio_gen or not self.radio:
            return
        if self.faults.sim_missing:
            self._line("+CPIN: SIM REMOVED")
            return
        self.sim_ready = True
        self._line("+CPIN: READY")
        self._registration_changed()
        self._at(self.timing.sms_ready_ms, self._sms_up, gen)

    def _sms_up(self, gen: int) -> None:
        if self.power != "on" or gen != self._radio_gen or not self.sim_ready:
            return
        self.sms_ready = True
        self._line("SMS DONE")
        self._later(self.timing.pb_ms, "PB DONE")

    def _radio_off(self, keep_sim: bool) -> None:
        """AT+CFUN=0 (SIM off too) or 4 (flight mode): detached, the data service gone."""
        self._radio_gen += 1
        self.radio = False
        if not keep_sim:
            self.sim_ready = self.sms_ready = False
        self.cch_started = False
        self.close()

    def _arm_garbage(self) -> None:
        if self.faults.garbage_every_ms and not self._garbage_armed and self.power == "on":
            self._garbage_armed = True
            self._at(self.faults.garbage_every_ms, self._garbage)

    def _garbage(self) -> None:
        self._garbage_armed = False
        if not self.faults.garbage_every_ms or self.power != "on":
            return
        noise = [b for b in range(256) if b >= 0x80 or (b < 0x20 and b not in (10, 13))]
        self._emit(bytes(self.rng.choice(noise) for _ in range(self.rng.randint(4, 40))))
        self._arm_garbage()

    # -- registration -------------------------------------------------------------
    def _targets(self) -> tuple[int, int]:
        """(CEREG stat, CREG stat) the network would give now."""
        f = self.faults
        if not self.radio or not self.sim_ready or f.sim_missing:
            return 0, 0
        if f.no_coverage:
            return 2, 2
        if f.denied:
            return 3, 3
        eps = 5 if f.roaming else 1
        cs = (7 if f.roaming else 6) if f.sms_only else eps
        return eps, cs

    def _registration_changed(self) -> None:
        if self.power != "on":
            return
        if self.faults.sim_missing:
            self.sim_ready = self.sms_ready = False
        target = self._targets()
        if target == (self.reg_stat, self.cs_stat):
            return
        self._reg_gen += 1
        if target[0] in (1, 3, 5) and self.reg_stat not in (1, 3, 5):
            if self.reg_stat != 2:
                self._set_stat(2, 2)  # searching first
            self._at(self.timing.register_ms, self._set_stat_if, self._reg_gen, target)
        else:
            self._set_stat(*target)

    def _set_stat_if(self, gen: int, target: tuple[int, int]) -> None:
        if gen == self._reg_gen and self.power == "on":
            self._set_stat(*target)

    def _set_stat(self, eps: int, cs: int) -> None:
        was = self.registered
        if eps != self.reg_stat and self.cereg_n:
            self._line(f"+CEREG: {eps}")
        if cs != self.cs_stat and self.creg_n:
            self._line(f"+CREG: {cs}")
        self.reg_stat, self.cs_stat = eps, cs
        if self.registered and not was:
            self.attached_apn = self.contexts.get(1, ("IP", ""))[1]  # the context at the attach
        if was and not self.registered:
            self.attached_apn = None
            if self.radio:  # the network's doing (AT+CFUN=0 / 4 is the host's own)
                self._line("+CGEV: NW PDN DEACT 1")
                self._cch_stopped()
