# When this firmware was built, as far as the firmware itself needs to know.
#
# BUILD_UTC_S is a date no copy of this firmware runs before: at or before the
# day its source was released. It is the pivot for times from outside: a GNSS
# date before it is a receiver's GPS week-number roll-over and is moved forward
# by whole 1024-week periods (as gpsd and NTP's "basedate" do); a network time
# before it is a fault. It must never be later than a true date the device can
# see, so it is written by hand at release (never later than the release day,
# nor than the earliest date the simulator's scenarios start at, 2025-06-02),
# and stays right for 1024 weeks (19.6 years) after it.
from micropython import const

BUILD_UTC_S = const(1735689600)  # 2025-01-01T00:00:00Z
