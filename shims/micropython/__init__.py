"""CPython stand-in for MicroPython's built-in `micropython` module.

Only what the firmware uses under CPython (simulator, tests). On a device and in
the MicroPython VM the built-in module is used instead; this file never ships.
"""


def const(value):
    """Compile-time constant on MicroPython; the value itself here."""
    return value


def native(func):
    return func


def viper(func):  # pragma: no cover - viper kernels are only imported on the device
    raise RuntimeError("viper code runs only on a MicroPython device")


def opt_level(level=None):
    return 0


def mem_info(verbose=False):
    return None


def heap_lock():
    return 0


def heap_unlock():
    return 0


def schedule(func, arg):
    func(arg)


kbd_intr_char = 3   # what kbd_intr last set (tests read it); -1: Ctrl-C does not interrupt


def kbd_intr(char):
    global kbd_intr_char
    kbd_intr_char = char
