"""Check the end-to-end lane's output again on the host, independently of the
firmware's own code: every frame the receiver stand-in stored, verified with
cbor2 and cryptography (host_tools.frames); sequence numbers without gaps; one
alert chain, unbroken, from alert-start to cancel; and the audio the receiver
got is the audio the microphone heard (the test signal of
tests/e2e/e2e_peripherals.py, decoded from IMA-ADPCM and compared block by
block: a lost I2S block shifts everything after it, so the comparison skips
no more blocks than the device counted as lost).

    python tools/vm/e2e_verify.py DIR      (DIR: what `node tools/vm/e2e.mjs --out DIR` wrote)

Prints one line per case; exits 1 if any case fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from e2e_peripherals import signal  # noqa: E402

from host_tools import adpcm  # noqa: E402
from host_tools.frames import FrameType, chain_link, split_sequence, verify_frame  # noqa: E402

BLOCK = 256  # samples per I2S block (1 KB of 32-bit words)
MIN_SNR_DB = 12.0  # IMA-ADPCM of the test signal: >= 31 dB; a block shifted by a lost one: about -4 dB
SETTLE = 64  # samples the codec needs at the start of the clip (or after a lost block) to reach the signal
MAX_GAP_BLOCKS = 64  # the most blocks one gap in the clip is searched for (2 s of audio)


def check_case(case_dir: Path, report: dict) -> list[str]:
    """The faults in one case's stored frames; `report` is the case's report.json."""
    key = bytes.fromhex(report["public_key"])
    now = report["epoch_s"] + report["device_ms"] // 1000 + 1
    wires = split_sequence((case_dir / "frames.cbor").read_bytes())
    faults: list[str] = []
    frames = []
    for wire in wires:
        verdict = verify_frame(wire, key, now=now)
        if not verdict.ok:
            faults.append(f"frame does not verify on the host: {verdict.reason} ({verdict.detail})")
            continue
        frames.append(verdict.frame)
    if len(wires) != report["frames"]:
        faults.append(f"{len(wires)} frames in frames.cbor, the report says {report['frames']}")
    frames.sort(key=lambda f: f.seq)
    seqs = [f.seq for f in frames]
    if seqs and seqs != list(range(seqs[0], seqs[-1] + 1)):
        faults.append(f"sequence numbers have gaps: {seqs}")
    alert = [f for f in frames if f.is_alert]
    if not alert or alert[0].type != FrameType.ALERT_START:
        faults.append("the alert does not begin with its alert-start")
    for prev, frame in zip(alert, alert[1:], strict=False):
        if frame.prev != chain_link(prev):
            faults.append(f"chain broken at seq {frame.seq}")
    if alert and alert[-1].type != FrameType.CANCEL:
        faults.append(f"the alert ends with {alert[-1].type_name}, not cancel")
    faults += _audio_faults([f for f in alert if f.type == FrameType.AUDIO], report.get("mic_overruns", 0))
    return faults


def _audio_faults(audio: list, lost_blocks: int) -> list[str]:
    pcm: list[int] = []
    for f in audio:
        if f.audio_offset != len(pcm):
            return [f"audio chunk at offset {f.audio_offset}, expected {len(pcm)}"]
        predictor, index = f.adpcm_state
        out, _ = adpcm.decode(f.audio, f.samples, predictor, index)
        pcm.extend(out)
    return pcm_faults(pcm, lost_blocks)


def _snr_db(got: list[int], ref: list[int]) -> float:
    power = sum(s * s for s in ref) or 1
    noise = sum((g - s) ** 2 for g, s in zip(got, ref, strict=True)) or 1
    return 10 * math.log10(power / noise)


def pcm_faults(pcm: list[int], lost_blocks: int = 0) -> list[str]:
    """Compare the decoded clip with the microphone's signal block by block.

    `lost_blocks` is what the device counted as lost (I2S ring overruns; only
    a device-speed run on a slow host loses any): the clip may then skip up to
    that many whole blocks of the signal (blocks lost after the clip was full
    are not in it), and every block it has must still be the signal's next one
    in order. After a skip the codec needs SETTLE samples again to catch up."""
    bad = []
    skipped = 0
    for start in range(0, len(pcm) - BLOCK + 1, BLOCK):
        got_block = pcm[start:start + BLOCK]
        for jump in range(min(lost_blocks - skipped, MAX_GAP_BLOCKS) + 1):
            ref_at = start + (skipped + jump) * BLOCK
            lo = SETTLE if (jump or start == 0) else 0
            snr = _snr_db(got_block[lo:], [signal(k) for k in range(ref_at + lo, ref_at + BLOCK)])
            if snr >= MIN_SNR_DB:
                skipped += jump
                break
        else:
            bad.append((start // BLOCK, round(snr, 1)))
    if bad:
        return [f"{len(bad)} audio blocks differ from what the microphone heard "
                f"(block, SNR dB; {lost_blocks} lost blocks allowed for): {bad[:8]}"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="the directory `node tools/vm/e2e.mjs --out DIR` wrote")
    args = parser.parse_args(argv)
    cases = sorted(p.parent for p in args.dir.glob("*/report.json"))
    if not cases:
        print(f"e2e_verify: no case reports under {args.dir}; run `node tools/vm/e2e.mjs --out {args.dir}`",
              file=sys.stderr)
        return 1
    failed = 0
    for case in cases:
        report = json.loads((case / "report.json").read_text())
        faults = check_case(case, report)
        if faults:
            failed += 1
            print(f"FAIL {case.name}")
            for f in faults:
                print(f"    {f}")
        else:
            lost = report.get("mic_overruns", 0)
            audio = f"audio in order, {lost} blocks lost on the device" if lost else "audio intact"
            print(f"PASS {case.name}: every frame verifies on the host, chain intact, {audio}")
    print(f"{len(cases) - failed} passed, {failed} failed (host check)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
