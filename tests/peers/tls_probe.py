#!/usr/bin/env python3
"""TLS facts for Amico's SIP-over-TLS tests, as one JSON line on stdout.

  tls_probe.py fingerprint CERT.pem
      {"sha256": "AB:CD:..."} of the first certificate in the file (the leaf, when
      the file is a chain written leaf first).

  tls_probe.py connect HOST:PORT [--ca-file PEM] [--timeout S]
      One TLS handshake with the server, as a new client would make it (Python's ssl
      module, the system's OpenSSL). Always exits 0 with one line:
      {"ok": true, "sha256": leaf fingerprint, "version": "TLSv1.3", "cipher": ...,
       "verified": true when --ca-file was given and the chain and the name (HOST)
       check out, null without --ca-file}
      or {"ok": false, "error": "...", "verified": false|null} when no handshake.
      Without --ca-file the certificate is not checked (a self-signed one is fine).

Fingerprints are SHA-256 over the DER certificate, upper-case hex bytes joined by
colons, as `openssl x509 -fingerprint -sha256` prints them. Loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import ssl
import sys


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def first_pem_certificate(path: str) -> bytes:
    text = open(path, encoding="ascii").read()
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.index(begin)
    stop = text.index(end, start) + len(end)
    return ssl.PEM_cert_to_DER_cert(text[start:stop])


def fingerprint(args) -> dict:
    return {"sha256": colon_hex(hashlib.sha256(first_pem_certificate(args.file)).digest())}


def connect(args) -> dict:
    host, _, port = args.address.rpartition(":")
    host = host.strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        return {"ok": False, "error": f"{host}: loopback only", "verified": None}
    if args.ca_file:
        ctx = ssl.create_default_context(cafile=args.ca_file)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, int(port)), timeout=args.timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
                return {"ok": True, "sha256": colon_hex(hashlib.sha256(der).digest()),
                        "version": tls.version(), "cipher": tls.cipher()[0],
                        "verified": True if args.ca_file else None}
    except ssl.SSLCertVerificationError as e:
        return {"ok": False, "error": f"certificate not verified: {e.verify_message}",
                "verified": False}
    except (OSError, ssl.SSLError, ValueError) as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}",
                "verified": False if args.ca_file else None}


def main(argv) -> int:
    p = argparse.ArgumentParser(prog="tls_probe.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fingerprint")
    f.add_argument("file")
    f.set_defaults(run=fingerprint)
    c = sub.add_parser("connect")
    c.add_argument("address", help="HOST:PORT")
    c.add_argument("--ca-file", default=None)
    c.add_argument("--timeout", type=float, default=5.0)
    c.set_defaults(run=connect)
    args = p.parse_args(argv)
    print(json.dumps(args.run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
