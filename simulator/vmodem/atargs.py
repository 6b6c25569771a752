"""Reading AT command arguments: `0,"host, name",443` -> ['0', '"host, name"', '443']."""

from __future__ import annotations


def split_args(args: str) -> list[str]:
    """Comma-separated arguments; commas inside quotes belong to the argument."""
    out, cur, quoted = [], [], False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if args:
        out.append("".join(cur).strip())
    return out


def unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def as_int(s: str, default: int = -1) -> int:
    try:
        return int(s)
    except ValueError:
        return default


def int_in(a: list[str], i: int, lo: int, hi: int) -> bool:
    """Argument i is present and an integer in lo..hi."""
    return i < len(a) and lo <= as_int(a[i], lo - 1) <= hi


def quoted(a: list[str], i: int, max_len: int) -> bool:
    """Argument i is present, in double quotes, and at most max_len characters inside them."""
    return i < len(a) and len(a[i]) >= 2 and a[i][0] == a[i][-1] == '"' and len(a[i]) - 2 <= max_len
