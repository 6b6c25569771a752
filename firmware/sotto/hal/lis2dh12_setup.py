# The LIS2DH12's set-up as data: registers, thresholds and the edge kinds
# (sotto.motion's). No hardware here: the driver (lis2dh12.py) writes it to the
# chip, and the simulator's virtual accelerometer (simulator/accel.py) applies
# the same thresholds to its motion profiles.
from micropython import const

# edge kinds: sotto.motion's (tests/firmware/test_lis2dh12.py checks they agree)
FALL = const(1)
IMPACT = const(2)
ACTIVE = const(3)
STILL = const(4)

ADDR = const(0x18)  # SA0 low (0x19 with SA0 high: board "accel.addr")
WHO_AM_I = const(0x0F)
CHIP_ID = const(0x33)
CTRL_REG1 = const(0x20)
CTRL_REG2 = const(0x21)
CTRL_REG3 = const(0x22)
CTRL_REG4 = const(0x23)
CTRL_REG5 = const(0x24)
CTRL_REG6 = const(0x25)
INT1_CFG = const(0x30)
INT1_SRC = const(0x31)
INT1_THS = const(0x32)
INT1_DURATION = const(0x33)
INT2_CFG = const(0x34)
INT2_SRC = const(0x35)
INT2_THS = const(0x36)
INT2_DURATION = const(0x37)
ACT_THS = const(0x3E)
ACT_DUR = const(0x3F)
IA = const(0x40)  # INTx_SRC: interrupt active

ODR_HZ = const(50)
MG_PER_LSB = const(32)  # thresholds at +-4 g
FF_MG = const(350)
FF_MS = const(100)
IMPACT_MG = const(2500)
ACT_MG = const(96)
ACT_DUR_N = const(12)  # (8 * ACT_DUR + 1) / ODR s of stillness before INT2 rises
ACT_MS = const((8 * 12 + 1) * 1000 // 50)  # 1940 ms: taken off the STILL edge's time
EDGES = const(32)

# (register, value) written in this order at start-up
SETUP = (
    (CTRL_REG1, 0x4F),  # 50 Hz, low-power, X/Y/Z on
    (CTRL_REG2, 0x00),  # no high-pass on the interrupt generators (free-fall needs gravity)
    (CTRL_REG3, 0x60),  # I1_IA1 | I1_IA2: free-fall and impact on INT1
    (CTRL_REG4, 0x10),  # +-4 g
    (CTRL_REG5, 0x0A),  # LIR_INT1 | LIR_INT2: latched until the source register is read
    (CTRL_REG6, 0x08),  # P2_ACT: activity / inactivity on INT2
    (INT1_THS, FF_MG // MG_PER_LSB),
    (INT1_DURATION, FF_MS * ODR_HZ // 1000),
    (INT1_CFG, 0x95),  # AOI=1 (AND), ZLIE | YLIE | XLIE: free-fall
    (INT2_THS, IMPACT_MG // MG_PER_LSB),
    (INT2_DURATION, 0x00),
    (INT2_CFG, 0x2A),  # OR of ZHIE | YHIE | XHIE: impact
    (ACT_THS, ACT_MG // 16),  # ACT_THS is 16 mg per LSB at +-4 g
    (ACT_DUR, ACT_DUR_N),
)
