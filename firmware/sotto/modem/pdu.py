# SMS-SUBMIT in PDU mode (3GPP TS 23.040 §9.2.2.2, GSM 03.40), 8-bit data.
#
# encode_submit() gives the bytes to hex-encode after AT+CMGS=<tpdu_len>
# (3GPP TS 27.005 §3.5.1: <length> counts the TPDU only, not the SMSC part).
# decode_submit() reads one back; tests use it, the firmware does not need it.
from micropython import const

MAX_UD = const(140)  # octets of 8-bit user data in one SMS
DCS_8BIT = const(0x04)  # TP-DCS: general data coding, 8-bit data, no class (TS 23.038 §4)
TOA_INTERNATIONAL = const(0x91)  # type of number: international, ISDN/telephony plan
TOA_UNKNOWN = const(0x81)  # type of number: unknown (national dialling), ISDN/telephony plan

_DIGITS = "0123456789*#abc"


class PduError(ValueError):
    pass


def _semi_octets(digits):
    # "46708251358" -> 64 07 28 15 53 F8: two digits per octet, low nibble first,
    # an odd count padded with F (TS 23.040 §9.1.2.3).
    out = bytearray((len(digits) + 1) // 2)
    for i in range(len(digits)):
        v = _DIGITS.find(digits[i])
        if v < 0:
            raise PduError("bad digit %r in number" % digits[i])
        if i & 1:
            out[i >> 1] |= v << 4
        else:
            out[i >> 1] = v
    if len(digits) & 1:
        out[-1] |= 0xF0
    return bytes(out)


def _split_number(number):
    if isinstance(number, (bytes, bytearray)):
        number = number.decode()
    number = number.strip()
    toa = TOA_UNKNOWN
    if number.startswith("+"):
        toa = TOA_INTERNATIONAL
        number = number[1:]
    if not number or len(number) > 20:
        raise PduError("number must have 1..20 digits")
    return number, toa


def address(number):
    """TP-DA: digit count, type of address, semi-octets. '+' makes it international."""
    digits, toa = _split_number(number)
    return bytes((len(digits), toa)) + _semi_octets(digits)


def smsc_address(number):
    """The SMSC part in front of the TPDU; None: "00", use the SMSC stored in the modem."""
    if not number:
        return b"\x00"
    digits, toa = _split_number(number)
    body = bytes((toa,)) + _semi_octets(digits)
    return bytes((len(body),)) + body  # length in octets here, not digits (TS 24.011 §8.2.5.1)


def vp_relative(minutes):
    """TP-VP relative format (TS 23.040 §9.2.3.12.1): the shortest period >= minutes."""
    if minutes <= 0:
        raise PduError("validity must be positive")
    if minutes <= 720:  # 0..143: (VP + 1) x 5 minutes
        return (minutes + 4) // 5 - 1
    if minutes <= 1440:  # 144..167: 12 hours + (VP - 143) x 30 minutes
        return 143 + (minutes - 720 + 29) // 30
    if minutes <= 30 * 1440:  # 168..196: (VP - 166) days
        return 166 + (minutes + 1439) // 1440
    weeks = (minutes + 10079) // 10080  # 197..255: (VP - 192) weeks
    return 255 if weeks > 63 else 192 + weeks


def vp_minutes(vp):
    """Minutes of a relative TP-VP octet."""
    if vp <= 143:
        return (vp + 1) * 5
    if vp <= 167:
        return 720 + (vp - 143) * 30
    if vp <= 196:
        return (vp - 166) * 1440
    return (vp - 192) * 10080


def encode_submit(number, data, validity_min=None, smsc=None, dcs=DCS_8BIT, mr=0,
                  status_report=False):
    """SMS-SUBMIT with 8-bit user data. Returns (pdu, tpdu_len): pdu includes the
    SMSC part; tpdu_len is the number AT+CMGS wants."""
    if len(data) > MAX_UD:
        raise PduError("user data is %d bytes; one SMS holds %d" % (len(data), MAX_UD))
    if not ((dcs & 0xCC) == 0x04 or (dcs & 0xF4) == 0xF4):
        raise PduError("TP-DCS 0x%02X is not an 8-bit data coding" % dcs)
    first = 0x01  # TP-MTI = SMS-SUBMIT, TP-RD = 0, TP-UDHI = 0, TP-RP = 0
    if validity_min is not None:
        first |= 0x10  # TP-VPF = relative
    if status_report:
        first |= 0x20  # TP-SRR
    sca = smsc_address(smsc)
    head = bytes((first, mr & 0xFF)) + address(number) + bytes((0x00, dcs))  # TP-PID 0
    if validity_min is not None:
        head += bytes((vp_relative(validity_min),))
    tpdu = head + bytes((len(data),)) + bytes(data)
    return sca + tpdu, len(tpdu)


def _read_number(pdu, i, ndigits, toa):
    nbytes = (ndigits + 1) // 2
    raw = pdu[i:i + nbytes]
    out = []
    for k in range(ndigits):
        v = raw[k >> 1] >> 4 if k & 1 else raw[k >> 1] & 0x0F
        if v > 14:
            raise PduError("bad semi-octet")
        out.append(_DIGITS[v])
    text = "".join(out)
    return ("+" + text if toa & 0x70 == 0x10 else text), i + nbytes


def decode_submit(pdu, with_smsc=True):
    """Fields of an SMS-SUBMIT PDU (as encode_submit makes, or published examples)."""
    i = 0
    smsc = None
    if with_smsc:
        n = pdu[0]
        if n:
            digits = pdu[2:1 + n]
            count = 2 * len(digits) - (1 if digits[-1] >> 4 == 0xF else 0)
            smsc, _ = _read_number(pdu, 2, count, pdu[1])
        i = 1 + n
    tpdu_len = len(pdu) - i
    first = pdu[i]
    if first & 0x03 != 0x01:
        raise PduError("not an SMS-SUBMIT (TP-MTI %d)" % (first & 3))
    mr = pdu[i + 1]
    ndigits = pdu[i + 2]
    toa = pdu[i + 3]
    number, i = _read_number(pdu, i + 4, ndigits, toa)
    pid = pdu[i]
    dcs = pdu[i + 1]
    i += 2
    vpf = (first >> 3) & 3
    vp = None
    if vpf == 2:
        vp = pdu[i]
        i += 1
    elif vpf in (1, 3):
        vp = bytes(pdu[i:i + 7])
        i += 7
    udl = pdu[i]
    ud = bytes(pdu[i + 1:])
    return {"smsc": smsc, "first": first, "mr": mr, "number": number, "toa": toa, "pid": pid,
            "dcs": dcs, "vp": vp, "udl": udl, "ud": ud, "tpdu_len": tpdu_len}
