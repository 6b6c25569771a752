"""The console tests' fixtures live in console_support.py (imported here so pytest finds them)."""

from console_support import browser, centre, centre_template, client  # noqa: F401
