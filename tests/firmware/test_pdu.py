# SMS-SUBMIT PDUs (sotto.modem.pdu) against published examples.
# Runs under CPython and in the MicroPython VM.
import binascii

from fwtest import raises, unhex
from sotto.modem import pdu

# Published examples (hex as printed in the sources):
# 1. "SMS messages and the PDU format" (dreamfabric / turbocontrol.com): "hellohello"
#    to +46708251358, default SMSC, TP-VP AA (4 days), 7-bit data.
HELLOHELLO = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"
# 2. an 8-bit example with an SMSC (+491710760000), to the national number 1234567,
#    TP-DCS F6 (8-bit, class 2), TP-VP AA, "hello"; AT+CMGS=17.
HELLO_8BIT = "079194710167000011000781214365F700F6AA0568656C6C6F"
# 3. Nordic nRF91 AT command reference, AT+CMGS example: SMSC +448888888, to
#    +358401234567, TP-VP 0B, 7-bit text; AT+CMGS=42.
NORDIC = ("069144888888F811000C9153481032547600000B20D4F29C9E769F4161"
          "D0BC3D07B5CBF379F89C769F416F7B590E62D3CB")


def hexu(b):
    return binascii.hexlify(b).decode().upper()


def test_published_8bit_example_byte_for_byte():
    body, tpdu_len = pdu.encode_submit("1234567", b"hello", validity_min=4 * 1440,
                                       smsc="+491710760000", dcs=0xF6)
    assert hexu(body) == HELLO_8BIT
    assert tpdu_len == 17  # the example's AT+CMGS=17


def test_header_of_the_classic_example():
    # our 8-bit encoding of the same message differs only in TP-DCS and the user data
    body, tpdu_len = pdu.encode_submit("+46708251358", b"hellohello", validity_min=4 * 1440)
    assert hexu(body).startswith(HELLOHELLO[:24] + "04AA")  # same up to TP-PID, then DCS 04
    assert hexu(body).endswith("0A" + hexu(b"hellohello"))
    assert tpdu_len == len(body) - 1


def test_decode_published_examples():
    d = pdu.decode_submit(unhex(HELLOHELLO))
    assert d["number"] == "+46708251358" and d["toa"] == 0x91
    assert d["vp"] == 0xAA and pdu.vp_minutes(d["vp"]) == 4 * 1440
    assert (d["dcs"], d["udl"], d["smsc"], d["mr"]) == (0, 10, None, 0)
    d = pdu.decode_submit(unhex(NORDIC))
    assert d["smsc"] == "+448888888"
    assert d["number"] == "+358401234567"
    assert d["tpdu_len"] == 42  # the example's AT+CMGS=42
    assert pdu.vp_minutes(d["vp"]) == 60
    d = pdu.decode_submit(unhex(HELLO_8BIT))
    assert (d["smsc"], d["number"], d["toa"], d["ud"]) == ("+491710760000", "1234567", 0x81, b"hello")


def test_semi_octets_and_type_of_address():
    # "15551234567 would be entered as 5155214365F7" (Zoom 4575 manual, PDU chapter)
    assert pdu.address("+15551234567") == unhex("0B91 5155214365F7")
    # the dreamfabric page: the unknown format gives 0708251358 -> 7080523185, length 0A
    assert pdu.address("0708251358") == unhex("0A81 7080523185")
    assert pdu.smsc_address(None) == b"\x00"
    assert pdu.smsc_address("+448888888") == unhex("069144888888F8")
    e = raises(pdu.PduError, pdu.address, "+44 20x")
    assert "bad digit" in str(e)
    raises(pdu.PduError, pdu.address, "+")


def test_relative_validity_period():
    # TS 23.040 §9.2.3.12.1 and the examples above: 0B = 1 h, AA = 4 days, AD = 1 week
    assert pdu.vp_relative(60) == 0x0B
    assert pdu.vp_relative(4 * 1440) == 0xAA
    assert pdu.vp_relative(7 * 1440) == 0xAD
    assert pdu.vp_relative(5) == 0 and pdu.vp_relative(6) == 1
    assert pdu.vp_relative(720) == 143 and pdu.vp_relative(750) == 144
    assert pdu.vp_relative(1440) == 167 and pdu.vp_relative(1441) == 168
    assert pdu.vp_relative(31 * 1440) == 197 and pdu.vp_relative(10 ** 7) == 255
    for vp in range(256):  # every code is the shortest period covering its own length
        assert pdu.vp_relative(pdu.vp_minutes(vp)) == vp


def test_full_140_byte_frame_round_trip():
    data = bytes(range(140))
    body, tpdu_len = pdu.encode_submit("+447700900123", data, validity_min=60)
    d = pdu.decode_submit(body)
    assert d["ud"] == data and d["udl"] == 140 and d["dcs"] == pdu.DCS_8BIT
    assert d["first"] == 0x11 and d["number"] == "+447700900123"
    assert tpdu_len == len(body) - 1
    e = raises(pdu.PduError, pdu.encode_submit, "+447700900123", data + b"x")
    assert "141" in str(e)


def test_no_validity_and_status_report_flags():
    body, _ = pdu.encode_submit("123", b"\x00\xff", status_report=True)
    assert hexu(body) == "00" "21" "00" "03" "81" "21F3" "00" "04" "02" "00FF"


def test_seven_bit_coding_is_refused():
    e = raises(pdu.PduError, pdu.encode_submit, "123", b"hi", dcs=0x00)
    assert "8-bit" in str(e)
