# Runs before main.py on every reset. Kept nearly empty of behaviour on purpose:
# a fault here could stop the REPL that technicians flash and provision through.
# Two jobs. First, a production unit (config repl_lock) stops Ctrl-C at once,
# before anything else, so the USB REPL cannot be reached. Then the boot
# selector (sotto.bootsel, docs/ota.md) picks the copy of the application that
# runs (an update's switch, or its rollback); whatever goes wrong in it, the base
# application as `sotto flash` wrote it runs (it drops the sotto modules the
# first step imported when it switches to another copy).
import gc

from sotto.hal import lock_repl

lock_repl()
del lock_repl

try:
    from sotto import bootsel

    bootsel.at_boot("/data")
    del bootsel
except Exception as e:  # noqa: BLE001
    print("[boot] E: boot selector: %r" % (e,))
gc.collect()
