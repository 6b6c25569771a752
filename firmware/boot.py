# Runs before main.py on every reset. Kept nearly empty of behaviour on purpose:
# a fault here could stop the REPL that technicians flash and provision through.
# The one job: the boot selector (sotto.bootsel, docs/ota.md) picks the copy of
# the application that runs (an update's switch, or its rollback). Whatever goes
# wrong in it, the base application as `sotto flash` wrote it runs.
import gc

try:
    from sotto import bootsel

    bootsel.at_boot("/data")
    del bootsel
except Exception as e:  # noqa: BLE001
    print("[boot] E: boot selector: %r" % (e,))
gc.collect()
