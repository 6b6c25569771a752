"""`make demo`: the main job. Not built yet: it says so instead of pretending."""

import sys

MISSING = [
    "receiver (sotto receive)",
    "simulated device and virtual modem",
    "covert SOS scenario",
]


def main() -> int:
    print("make demo: the end-to-end demo is not built yet. Missing:", file=sys.stderr)
    for item in MISSING:
        print(f"  - {item}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
