"""tools/vm/e2e_verify.py's audio check: the clip the receiver got against the
microphone's test signal, block by block, allowing for exactly the blocks the
device counted as lost (a device-speed run on a slow host loses some)."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tools" / "vm"))

import e2e_verify  # noqa: E402
from e2e_peripherals import signal  # noqa: E402  (e2e_verify put tests/e2e on the path)

from host_tools import adpcm  # noqa: E402

BLOCK = e2e_verify.BLOCK


def _clip(blocks, without=()):
    """The signal's first `blocks` blocks minus the ones in `without`, as the codec leaves them."""
    pcm = []
    for b in range(blocks):
        if b not in without:
            pcm.extend(signal(k) for k in range(b * BLOCK, (b + 1) * BLOCK))
    data, _ = adpcm.encode(pcm)
    out, _ = adpcm.decode(data, len(pcm), 0, 0)
    return list(out)


def test_a_whole_clip_matches_the_signal():
    assert e2e_verify.pcm_faults(_clip(40)) == []


def test_blocks_the_device_counted_as_lost_may_be_missing_and_no_more():
    clip = _clip(40, without={5, 17, 18})
    assert e2e_verify.pcm_faults(clip, lost_blocks=3) == []
    assert e2e_verify.pcm_faults(clip, lost_blocks=5) == []  # two lost after the clip was full
    faults = e2e_verify.pcm_faults(clip, lost_blocks=2)
    assert faults and "differ from what the microphone heard" in faults[0]
    assert e2e_verify.pcm_faults(clip)  # none counted lost: everything after block 5 is shifted


def test_a_damaged_block_is_found_even_with_lost_blocks_allowed_for():
    clip = _clip(40, without={5})
    clip[20 * BLOCK + 100:20 * BLOCK + 200] = [0] * 100
    faults = e2e_verify.pcm_faults(clip, lost_blocks=1)
    assert faults and "[(20," in faults[0]  # the clip's block 20 (the signal's 21st), and only it


def test_blocks_out_of_order_are_not_explained_by_lost_ones():
    pcm = _clip(12)
    swapped = pcm[:4 * BLOCK] + pcm[5 * BLOCK:6 * BLOCK] + pcm[4 * BLOCK:5 * BLOCK] + pcm[6 * BLOCK:]
    assert e2e_verify.pcm_faults(swapped, lost_blocks=4)
