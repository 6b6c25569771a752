# Runs before main.py on every reset. Kept almost empty of behaviour on
# purpose: a fault here could stop the REPL that technicians flash and provision
# through. The one thing it does: a production unit (config repl_lock) stops
# Ctrl-C at once, before main.py's imports, so the USB REPL cannot be reached.
import gc

from sotto.hal import lock_repl

lock_repl()
gc.collect()
