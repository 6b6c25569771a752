# Cellular: how frames leave the device.
#
#   at        AT engine over the modem UART (one command in flight, URCs, errors)
#   simcom    SIMCom A7670 / SIM7600-class driver (power, SIM, registration,
#             PDP, TLS/TCP through the module's CCH client, SMS in PDU mode)
#   http      HTTP/1.1 POST /v1/frames head and the response parser
#   pdu       SMS-SUBMIT PDU encoder (8-bit data) and decoder
#   base, cch the driver's command execution and URCs, and its data connection
#   delivery  the delivery task: batches, acknowledgement
#   ladder    backoff and the recovery ladder
#   fallback  the SMS fallback
#   rejects   frames the receiver rejected, kept on flash for the device log
#
# Nothing here touches hardware at import: the UART, the PWRKEY line and the RNG
# are passed in (see build()). docs/modem.md has the dialogue and the policy.


def build(hal, sched, queue, settings, alert_live=None, on_time=None, on_closed=None,
          on_rejected=None, opener=None, refusal=None, on_start_acked=None, on_commands=None,
          secondary_opener=None):
    """Wire the modem stack to a HAL; returns the Delivery (spawn its .task).

    settings (a dict, usually the "modem" part of the device configuration):
      host, port (443), tls (True), apn (""), ca_cert (the CA certificate's file
      under storage_root, downloaded to the module under that name; None: no
      server check, which the driver only does with insecure_tls), insecure_tls
      (False), sms_number (None: no SMS fallback), sms_after_s (30),
      sms_every_s (60), rejects_path (<storage_root>/rejected.log)
    opener: sotto.answer.Opener for the centre's signed answers; refusal: a
    ConfigError saying why nothing may go over the network (then only SMS).
    settings "secondary" ({host, port, tls, ca_cert}), "secondary_after_s" and
    "probe_s", with secondary_opener (the second centre's key): the second
    path (sotto.paths); without secondary_opener it is not used.
    """
    from sotto.modem.at import AtEngine
    from sotto.modem.delivery import Delivery
    from sotto.modem.rejects import RejectLog
    from sotto.modem.simcom import Simcom
    from sotto.paths import Paths, Receiver

    engine = AtEngine(hal.modem_uart, sched)
    modem = Simcom(engine, pwrkey=hal.modem_pwrkey, apn=settings.get("apn", ""),
                   ca_cert=settings.get("ca_cert"))
    modem.insecure_tls = bool(settings.get("insecure_tls"))
    if settings.get("ca_cert") and refusal is None:
        try:
            with open(hal.storage_root + "/" + settings["ca_cert"], "rb") as f:
                modem.ca_pem = f.read()
        except OSError:
            pass  # network_refusal() checked it exists; the module may still hold it
    paths = None
    sec = settings.get("secondary")
    if sec is not None and secondary_opener is not None and refusal is None:
        modem.ctx1 = True  # SSL context 1: the secondary's CA
        modem.ca_cert1 = sec.get("ca_cert")
        if modem.ca_cert1:
            try:
                with open(hal.storage_root + "/" + modem.ca_cert1, "rb") as f:
                    modem.ca_pem1 = f.read()
            except OSError:
                pass  # config.secondary_refusal() checked it exists
        paths = Paths(Receiver(settings["host"], settings.get("port", 443), settings.get("tls", True), 0,
                               opener, settings.get("ca_cert")),
                      Receiver(sec["host"], sec["port"], sec["tls"], 1, secondary_opener, modem.ca_cert1),
                      int(settings.get("secondary_after_s", 60)), int(settings.get("probe_s", 300)))
    rejects = RejectLog(settings.get("rejects_path") or hal.storage_root + "/rejected.log")
    d = Delivery(modem, queue, sched, settings["host"], settings.get("port", 443),
                 tls=settings.get("tls", True), sms_number=settings.get("sms_number"),
                 random_bytes=hal.random_bytes, alert_live=alert_live, rejects=rejects,
                 on_time=on_time, on_closed=on_closed, on_rejected=on_rejected,
                 opener=opener, refusal=refusal, on_start_acked=on_start_acked,
                 on_commands=on_commands, paths=paths)
    d.sms.after_ms = int(settings.get("sms_after_s", 30)) * 1000
    d.sms.every_ms = int(settings.get("sms_every_s", 60)) * 1000
    return d
