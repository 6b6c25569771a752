"""How the virtual modem checks a TLS server: like the module, or OpenSSL-strict.

Module (the default; A76XX AT Command Manual V1.09 19.2.1, AT+CSSLCFG):
- `authmode` 1 or 2: the server's chain must end at the CA named by `cacert` (and
  only that one: no system store); 0 or 3: the server is not checked;
- the certificate dates are checked only with `ignorelocaltime` 0 (default 1), and
  then against this machine's clock (the module's would come from AT+CCLK / NITZ);
- no host-name check: V1.09 documents none, so any certificate the CA issued is
  accepted for any host;
- SNI only with `enableSNI` 1 (default 0).

Strict (Faults.tls_strict): what an OpenSSL client does by default: host name and
dates always checked (with `authmode` 1 or 2), SNI always sent.
"""

from __future__ import annotations

import ssl
from typing import Any

X509_V_FLAG_NO_CHECK_TIME = 0x200000  # OpenSSL's flag (x509_vfy.h); Python names no constant for it

_VERSIONS = {0: ssl.TLSVersion.SSLv3, 1: ssl.TLSVersion.TLSv1, 2: ssl.TLSVersion.TLSv1_1,
             3: ssl.TLSVersion.TLSv1_2}


# AT+CSSLCFG: integer settings (their ranges) and file settings; the module's defaults (19.2.1)
SSL_INT_RANGES = {"sslversion": (0, 4), "authmode": (0, 3), "ignorelocaltime": (0, 1),
                  "negotiatetime": (10, 300), "enableSNI": (0, 1)}
SSL_FILES = ("cacert", "clientcert", "clientkey")
SSL_DEFAULTS: dict[str, Any] = {"sslversion": 4, "authmode": 0, "ignorelocaltime": 1, "negotiatetime": 300,
                                "enableSNI": 0, "cacert": None, "clientcert": None, "clientkey": None}


def ssl_settings(contexts: dict[int, dict[str, Any]], index: int) -> dict[str, Any]:
    """SSL context `index`'s settings: the defaults until AT+CSSLCFG changes them."""
    return contexts.setdefault(index, dict(SSL_DEFAULTS))


class NoCert(Exception):
    """`authmode` asks for a server check and no CA certificate of that name is stored."""


def client_context(cfg: dict[str, Any], certs: dict[str, str], host: str,
                   strict: bool) -> tuple[ssl.SSLContext, str | None, bool]:
    """(context, the SNI to send or None, whether the server is authenticated) for
    one AT+CCHOPEN with the SSL context settings `cfg` (simulator.vmodem.cch)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    version = cfg.get("sslversion", 4)
    if version in _VERSIONS:
        ctx.maximum_version = _VERSIONS[version]  # an old version: the handshake fails on a modern server
        if version == 3:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    verify = cfg.get("authmode", 0) in (1, 2)
    if verify:
        pem = certs.get(cfg.get("cacert") or "")
        if pem is None:
            raise NoCert()
        ctx.load_verify_locations(cadata=pem)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = strict
        if not strict and cfg.get("ignorelocaltime", 1) != 0:
            ctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME  # type: ignore[assignment]
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    sni = host if strict or cfg.get("enableSNI", 0) == 1 else None
    return ctx, sni, verify
