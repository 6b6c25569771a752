"""The device-side half of host_tools.device_link: plain MicroPython run in the device's
raw REPL (hashing files, writing a file atomically, free space)."""

# Device-side helpers, defined once per session in the REPL's globals. Plain
# MicroPython; each prints one JSON line that the host reads back.
_HELPERS = """\
import os, json, hashlib, binascii


def _s_sha(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return None
    h = hashlib.sha256(); b = bytearray(1024); m = memoryview(b)
    with f:
        while True:
            n = f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()


def _s_walk(d, out):
    try:
        it = list(os.ilistdir(d))
    except OSError:
        return
    for e in it:
        p = (d if d != '/' else '') + '/' + e[0]
        if e[1] & 0x4000:
            _s_walk(p, out)
        else:
            out.append(p)


def _s_hashes(paths, roots):
    ps = list(paths)
    for r in roots:
        _s_walk(r, ps)
    print(json.dumps(dict((p, _s_sha(p)) for p in ps)))


def _s_mkdirs(p):
    d = ''
    for part in p.split('/')[1:-1]:
        d += '/' + part
        try:
            os.mkdir(d)
        except OSError:
            pass


def _s_rm(p):
    try:
        os.remove(p)
    except OSError as e:
        if e.args[0] not in (2, 44):
            raise


def _s_put(p, data, first, last):
    global _s_f
    t = p + '.tmp'
    try:
        if first:
            _s_mkdirs(p)
            _s_f = open(t, 'wb')
        _s_f.write(binascii.a2b_base64(data))
        if last:
            _s_f.close()
            _s_f = None
            try:
                os.rename(t, p)
            except OSError:
                _s_rm(p)
                os.rename(t, p)
    except OSError as e:
        try:
            _s_f.close()
        except Exception:
            pass
        _s_f = None
        _s_rm(t)
        print(json.dumps({'errno': e.args[0]}))
        return
    print(json.dumps({'ok': 1}))


def _s_free():
    s = os.statvfs('/')
    print(json.dumps([s[0], s[2], s[4]]))
"""
