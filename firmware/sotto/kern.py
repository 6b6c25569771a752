# Marks for the device's native kernels (sotto/k_*.py).
#
# A kernel module imports these names instead of `micropython`: here they
# change nothing, so the module runs as plain bytecode in the MicroPython VM
# and under CPython. When `sotto flash` knows the device's architecture it also
# builds sotto/k_NAME_native.mpy from the same source with the marks made real
# (host_tools/firmware_build.py: `@viper` -> `@micropython.viper`, `@native` ->
# `@micropython.native`, the ptrN() calls become viper's pointer casts), and the
# module that uses a kernel imports the native build first (see load()).
#
# Rules that keep both builds giving the same bytes (tests check them):
# every integer a kernel computes stays below 2**30 (a MicroPython small int:
# no heap allocation in bytecode, no overflow in viper's 32-bit words); a value
# read through a pointer is wrapped in int(); ptrN() appears only inside a
# function marked @viper.


def native(func):
    return func


def viper(func):
    return func


def ptr8(buf):
    return buf


def ptr16(buf):
    return buf


def ptr32(buf):
    return buf


def load(name):
    """The native build of kernel module sotto.NAME (sotto/NAME_native.mpy,
    only on a device flashed with its -march), or None."""
    try:
        return __import__("sotto." + name + "_native", None, None, ("x",))
    except (ImportError, ValueError):  # absent; ValueError: a .mpy for another arch
        return None
