# Runs before main.py on every reset. Kept empty of behaviour on purpose: a
# fault here could stop the REPL that technicians flash and provision through.
import gc

gc.collect()
