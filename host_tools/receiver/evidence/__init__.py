"""Evidence bundles: export an alert, verify a bundle offline.

    result = export_alert(conn, 12, Path("A12-evidence"), operator="Bob")   # sealed by the centre
    check = verify_bundle(Path("A12-evidence"), centre_key=CENTRE_PUB, device_key=DEVICE_PUB)
    check.verdict, check.problems, check.missing     # intact | incomplete | tampered

A bundle is a folder:

    frames.cbor      the alert's frames exactly as received, in chain order (CBOR sequence)
    audio.wav        the audio frames decoded (IMA-ADPCM) to 16-bit PCM, gaps as silence
    track.geojson    the positions (RFC 7946): a LineString and one Point per fix
    device-key.pem   the device's Ed25519 public key
    report.json      per-frame verdicts, the hash chain, audio and track summaries,
                     when and how each frame arrived, who exported it and when
    report.html      the same for people, with the track and a timeline drawn inline (SVG)
    manifest.json    SHA-256 and size of every file above, every frame's SHA-256 (chain order)
    manifest.sig     the centre's seal: Ed25519 over "sotto-evidence/2\0" + manifest.json (seal.py)

Verification checks the seal against the centre key given from outside the
bundle (whoever lacks the centre's private key cannot make a bundle that
verifies), then recomputes everything from frames.cbor and the public key: every
signature and audio digest, that every frame belongs to this device and alert,
the chain (a removed frame leaves a gap, a reordered file no longer follows the
chain), the WAV, the GeoJSON and the report, and every file's hash. It reports
the SHA-256 of manifest.json, which the receiver's audit log recorded at export:
comparing the two shows the bundle is the one exported. A genuine bundle of an
alert that lacks frames, its end or announced audio is `incomplete`, not `tampered`.

Inside: derive (what export and verification both compute), export (export_alert),
seal (the centre's signature, verdicts), check (verify_bundle).
"""

from host_tools.receiver.evidence.check import BundleCheck, verify_bundle
from host_tools.receiver.evidence.derive import (
    BUNDLE_FORMAT,
    FRAMES_FILE,
    HTML_FILE,
    KEY_FILE,
    MANIFEST_FILE,
    MAX_AUDIO_SECONDS,
    REPORT_FILE,
    TRACK_FILE,
    WAV_FILE,
    AudioBuild,
    ChainAnalysis,
    EvidenceError,
    analyse_chain,
    build_audio,
    build_track,
    derive_report,
)
from host_tools.receiver.evidence.export import ExportResult, export_alert

__all__ = [
    "AudioBuild", "BUNDLE_FORMAT", "BundleCheck", "ChainAnalysis", "EvidenceError", "ExportResult",
    "FRAMES_FILE", "HTML_FILE", "KEY_FILE", "MANIFEST_FILE", "MAX_AUDIO_SECONDS", "REPORT_FILE",
    "TRACK_FILE", "WAV_FILE", "analyse_chain", "build_audio", "build_track", "derive_report",
    "export_alert", "verify_bundle",
]
