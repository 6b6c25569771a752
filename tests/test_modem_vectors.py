"""Cross-checks of the cellular code against implementations nobody here wrote,
or wrote twice: the receiver-answer vectors against cbor2, and the firmware's
SMS-SUBMIT encoder against the virtual SMS centre's separate decoder."""

from __future__ import annotations

import http_vectors
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sotto.modem import pdu

from simulator.smsc import PduDecodeError, decode_submit


@pytest.mark.parametrize("name", sorted(http_vectors.VECTORS))
def test_answer_vectors_are_cbor2_canonical(name):
    import cbor2

    want = cbor2.dumps(http_vectors.VECTORS[name], canonical=True).hex()
    assert "".join(getattr(http_vectors, name).split()) == want


numbers = st.builds(lambda plus, digits: ("+" if plus else "") + digits,
                    st.booleans(), st.text("0123456789", min_size=1, max_size=15))


@settings(max_examples=200, deadline=None)
@given(numbers, st.binary(max_size=140), st.one_of(st.none(), st.integers(1, 63 * 10080)))
def test_firmware_pdus_decode_in_the_smsc(number, data, validity):
    body, tpdu_len = pdu.encode_submit(number, data, validity_min=validity)
    tpdu = body[1:]  # no SMSC part: the module's stored SMSC
    assert len(tpdu) == tpdu_len
    sms = decode_submit(tpdu)
    assert sms.number == number and sms.user_data == data and sms.dcs == pdu.DCS_8BIT
    if validity is None:
        assert sms.validity is None
    else:
        assert sms.validity is not None and pdu.vp_minutes(sms.validity) >= validity


def test_smsc_refuses_what_it_cannot_deliver():
    body, _ = pdu.encode_submit("+447700900123", b"x")
    with pytest.raises(PduDecodeError, match="TP-DCS"):
        decode_submit(bytes.fromhex("11000B916407281553F80000AA0AE8329BFD4697D9EC37"))  # 7-bit text
    with pytest.raises(PduDecodeError, match="SMS-SUBMIT"):
        decode_submit(b"\x04" + body[2:])
    with pytest.raises(PduDecodeError, match="short"):
        decode_submit(body[1:6])
    with pytest.raises(PduDecodeError, match="TP-UDL"):
        decode_submit(body[1:] + b"extra")
