"""Sotto desktop simulator: virtual hardware, virtual modem, scenarios, fleets."""
