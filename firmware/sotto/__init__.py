# Sotto firmware: portable core. Nothing here touches hardware (see sotto/hal/).
VERSION = "0.1.0"
