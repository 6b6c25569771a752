# Receiver answers (docs/frames.md "Delivery and acknowledgement") as CBOR hex,
# deterministically encoded. tests/test_modem_vectors.py checks each against
# cbor2.dumps(obj, canonical=True) of the object written beside it, so these
# stay true to an implementation nobody here wrote.

# {"results": [{"status": "accepted", "device": h'544553542d303031', "seq": 5}], "time": 1790000000}
ACK_ONE = ("a26474696d651a6ab13b8067726573756c747381a36373657105666465766963654854455354"
           "2d30303166737461747573686163636570746564")

# {"results": [{"status": "accepted", "device": 'TEST-001', "seq": 7},
#              {"status": "duplicate", "device": 'TEST-001', "seq": 8},
#              {"status": "rejected", "device": null, "seq": null, "reason": "malformed-cbor"}],
#  "time": 1790000123, "closed": [3]}
ACK_MIXED = ("a36474696d651a6ab13bfb66636c6f736564810367726573756c747383a3637365710766646576"
             "69636548544553542d30303166737461747573686163636570746564a36373657108666465766963"
             "6548544553542d30303166737461747573696475706c6963617465a463736571f666646576696365f6"
             "66726561736f6e6e6d616c666f726d65642d63626f72667374617475736872656a6563746564")

# {"reason": "malformed-cbor"}   (an HTTP 400 answer)
ERR_400 = "a166726561736f6e6e6d616c666f726d65642d63626f72"

VECTORS = {
    "ACK_ONE": {"results": [{"status": "accepted", "device": b"TEST-001", "seq": 5}], "time": 1790000000},
    "ACK_MIXED": {"results": [{"status": "accepted", "device": b"TEST-001", "seq": 7},
                              {"status": "duplicate", "device": b"TEST-001", "seq": 8},
                              {"status": "rejected", "device": None, "seq": None,
                               "reason": "malformed-cbor"}],
                  "time": 1790000123, "closed": [3]},
    "ERR_400": {"reason": "malformed-cbor"},
}
