#!/usr/bin/env python3
"""A PJSIP (pjsua2) user agent for Amico's interop tests, driven by flags.

One process plays one role: ``agent`` (registers with digest auth, or listens as
an IP account, and answers) or ``caller`` (places calls). It reports what happens
as JSON lines on stdout; PJSIP's own log goes to stderr. Loopback (127.0.0.1) only.
Exit codes: 0 done, 1 internal failure, 2 bad flags, 3 --timeout exceeded.

Transports (--transport): udp (default), tcp, or tls (SIP over TLS, RFC 3261 §26). The
process creates exactly one SIP transport and binds every account to it, so with
--transport tls every REGISTER, INVITE and in-dialog request it sends goes over TLS,
and a call it receives came in over TLS (over the connection it opened to its
registrar, when the server reuses it as it should). TLS flags:

  --ca-file PEM    verify the server's certificate against these CAs (and its name:
                   a subjectAltName matching the host of the URI, e.g. IP 127.0.0.1)
  --no-verify      accept any server certificate (a development self-signed one);
                   --transport tls needs exactly one of --ca-file and --no-verify
  --sips           use sips: URIs (AOR, registrar, --to, --proxy) instead of
                   sip:...;transport=tls
  --tls-cert PEM, --tls-key PEM
                   certificate and key of this process's own TLS listener (PJSIP
                   always opens one; without them it cannot accept TLS connections)

The wheel's PJSIP 2.15.1 links OpenSSL 1.0.2k: TLS 1.2 at most, ECDHE with AES-GCM,
ECDSA P-256 or RSA certificates (no Ed25519).

Limits of the pjsua2 wheel (see shared PEERS.md): at most 4 calls and 8 accounts
per process. Every pj.Call / pj.Account is dropped before libDestroy(), results are
written before it, and the process leaves with os._exit right after it.

Events: one JSON object per line, always with "event" and "t" (seconds since start).
"call" is this process's call index (0, 1, ...), "account" an index into --user.

  ready          role, transport (udp|tcp|tls), host, port, sip ("127.0.0.1:PORT"),
                 contact, accounts [{index, user, uri}], pid, pjsip, and with tls:
                 tls {verify_server, ca_file, cert_file, sips}
  registered     account, user, code, reason, expires, via_transport, source
  registration_failed  account, user, code, reason, expires, via_transport, source
  unregistered   account, user, code, reason, expires, via_transport, source
                 (--unregister-at-end). via_transport: the protocol of the top Via of
                 the answer ("UDP", "TCP", "TLS": the transport the REGISTER went
                 over), null when no answer came (e.g. a TLS handshake that failed:
                 then code is PJSIP's, reason names the error); source: the
                 answer's source address, null without an answer.
  calling        call, to                      (caller: INVITE sent)
  incoming       call, account, user, remote_uri, from_display, from_user, from_uri,
                 from_header, to_user, to_uri, request_uri, call_id, source,
                 via_transport, x_headers {lower-case name: value}. source: the
                 address the INVITE came from (over TLS or TCP: the far end of the
                 connection, which is the server's listener when the server reuses the
                 connection this UA opened); via_transport: the protocol of its top
                 Via as the sender wrote it ("TLS").
  ringing        call, code, reason            (caller: each distinct 1xx > 100)
  confirmed      call, remote_uri, remote_contact, call_id
  media_active   call, update (0 first, then 1.. after re-INVITE/UPDATE), codec
                 ("PCMU/8000"), remote_rtp, conf_port
  media_state    call, status                  (audio not active: hold, none, error)
  reinvite       call, method (INVITE|UPDATE), direction (sent|received), code, reason
                 (final answer of an in-dialog offer, e.g. PJSIP's lock-codec one)
  dtmf_sent      call, digits, method ("rfc4733")
  dtmf_received  call, digit, method ("rfc4733"|"info")
  hangup         call, reason (hangup-after|cancel-after|command|exit), kind
                 (bye|cancel|reject)          (we are ending the call)
  disconnected   call, code, reason, by (local|remote), local_reason, duration
                 (connected s), total_duration (s), confirmed (bool)
  audio          call, verdict (present|absent|unchecked|no-recording), present,
                 tone_hz, power, neighbours_hz, neighbour_power, present_secs,
                 duration (s of audio recorded), rx_packets, tx_packets, codec, file
                 (null if recorded to a temporary folder), checks [{hz, present,
                 power, present_secs}] for each --check-hz. Emitted once per call
                 that had media, after "disconnected", when recording (--record-dir,
                 or --tone-hz/--check-hz which record to a temporary folder).
  error          message, kind (usage|setup|timeout|action|call|command|internal),
                 [call]
  done           code (exit code), calls, ended, reason — the last line.

Powers are those of tests/peers/audio.py: a sine of amplitude A (full scale 1) = A**2.

Commands on stdin (with --stdin-control; EOF = quit): quit | hangup [CALL] |
answer [CALL] | reject [CALL] [CODE] | dtmf DIGITS [CALL] (no CALL = every live call).
"""

from __future__ import annotations

import os
import sys

# fd 1 belongs to PJSIP's log from here on; JSON goes to a duplicate of the
# original stdout. Done before anything can print.
_JSON_FD = os.dup(1)
os.dup2(2, 1)
sys.stdout = sys.stderr

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audio  # noqa: E402

MAX_CALLS = 4
MAX_ACCOUNTS = 8
POLL_MS = 10
STATS_EVERY = 0.5
CLEANUP_SECS = 3.0
WAV_CLOSE_SECS = 2.0

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

_T0 = time.monotonic()
_OUT = os.fdopen(_JSON_FD, "w", buffering=1, encoding="utf-8")
_OUT_LOCK = threading.Lock()


def emit(event: str, **fields) -> None:
    """Write one JSON event line on the original stdout and flush it."""
    obj = {"event": event, "t": round(time.monotonic() - _T0, 3)}
    obj.update(fields)
    line = json.dumps(obj, default=str)
    with _OUT_LOCK:
        try:
            _OUT.write(line + "\n")
            _OUT.flush()
        except (BrokenPipeError, ValueError):
            pass


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # noqa: D401 - argparse API
        raise UsageError(message)


def parse_args(argv):
    p = _Parser(
        prog="ua.py",
        description="PJSIP user agent for interop tests; JSON events on stdout.",
        epilog=__doc__.split("Events:", 1)[1].join(["Events:", ""]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--role", choices=["agent", "caller"], required=True)
    p.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp")
    p.add_argument("--ca-file", default=None,
                   help="tls: verify the server's certificate against these CAs (PEM)")
    p.add_argument("--no-verify", action="store_true",
                   help="tls: accept any server certificate (self-signed, development)")
    p.add_argument("--sips", action="store_true",
                   help="tls: sips: URIs instead of sip:...;transport=tls")
    p.add_argument("--tls-cert", default=None,
                   help="tls: certificate (PEM) of this UA's own TLS listener")
    p.add_argument("--tls-key", default=None,
                   help="tls: private key (PEM) of this UA's own TLS listener")
    p.add_argument("--local-port", type=int, default=0, help="SIP port, 0 = ephemeral")
    p.add_argument("--user", action="append", default=[],
                   help="agent account user (repeat for several accounts); caller: From user")
    p.add_argument("--accounts", type=int, default=0,
                   help="agent accounts in this process (default: number of --user, max 8)")
    p.add_argument("--password", default=None, help="digest password (all accounts)")
    p.add_argument("--auth-user", default=None, help="digest user name if not the --user")
    p.add_argument("--registrar", default=None, help="host:port or SIP URI to register with")
    p.add_argument("--expires", type=int, default=300, help="registration expiry (s)")
    p.add_argument("--unregister-at-end", action="store_true",
                   help="send REGISTER Expires: 0 at exit and wait for its answer")
    p.add_argument("--answer", choices=["auto", "reject", "ignore"], default="auto")
    p.add_argument("--reject-code", type=int, default=486)
    p.add_argument("--answer-delay", type=float, default=0.0)
    p.add_argument("--hangup-after", type=float, default=None,
                   help="hang up this many seconds after the call is confirmed")
    p.add_argument("--to", default=None, help="caller: request URI, e.g. sip:100@127.0.0.1:5060")
    p.add_argument("--from-user", default=None)
    p.add_argument("--from-display", default=None)
    p.add_argument("--from-domain", default=None,
                   help="caller: From host (default: registrar's, else --to's)")
    p.add_argument("--proxy", default=None, help="outbound proxy, host:port or SIP URI")
    p.add_argument("--header", action="append", default=[],
                   help="caller: extra INVITE header 'Name: value' (repeatable)")
    p.add_argument("--cancel-after", type=float, default=None,
                   help="caller: hang up (CANCEL) this long after sending INVITE if not answered")
    p.add_argument("--calls", type=int, default=None,
                   help="caller: simultaneous calls (default 1, max 4); "
                        "agent: exit after this many calls ended (default 0 = keep running)")
    p.add_argument("--play", default=None, help="WAV looped into each call once media is up")
    p.add_argument("--record-dir", default=None, help="record what each call receives here")
    p.add_argument("--tone-hz", type=float, default=None,
                   help="tone expected from the other side (audio verdict)")
    p.add_argument("--check-hz", type=float, action="append", default=[],
                   help="extra frequency to report on in the audio event (repeatable)")
    p.add_argument("--dtmf", default=None, help="RFC 4733 digits to send after confirmation")
    p.add_argument("--dtmf-delay", type=float, default=0.5)
    p.add_argument("--codecs", default="PCMU,PCMA",
                   help="comma list of PCMU/PCMA in priority order")
    p.add_argument("--no-lock-codec", action="store_true",
                   help="do not send PJSIP's lock-codec re-INVITE/UPDATE")
    p.add_argument("--stdin-control", action="store_true",
                   help="read commands on stdin (quit, hangup [i], answer [i], "
                        "reject [i] [code], dtmf DIGITS [i]); EOF means quit")
    p.add_argument("--name", default=None, help="label used in recording file names")
    p.add_argument("--log-level", type=int, default=4, help="PJSIP log level on stderr (0-6)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="overall guard: exit 3 with an error event past it")
    a = p.parse_args(argv)

    if not 0 <= a.local_port <= 65535:
        raise UsageError("--local-port must be in 0..65535")
    if a.timeout <= 0 or a.timeout > 3600:
        raise UsageError("--timeout must be in (0, 3600] seconds")
    for flag in ("answer_delay", "hangup_after", "cancel_after", "dtmf_delay"):
        v = getattr(a, flag)
        if v is not None and (v < 0 or v > 3600):
            raise UsageError(f"--{flag.replace('_', '-')} must be in [0, 3600] seconds")
    codecs = [c.strip().upper() for c in a.codecs.split(",") if c.strip()]
    if not codecs or any(c not in ("PCMU", "PCMA") for c in codecs):
        raise UsageError("--codecs takes PCMU and/or PCMA")
    a.codec_list = codecs
    if a.transport == "tls":
        if bool(a.ca_file) == a.no_verify:
            raise UsageError("--transport tls needs exactly one of --ca-file PEM "
                             "(verify the server) and --no-verify")
        for flag, path in (("--ca-file", a.ca_file), ("--tls-cert", a.tls_cert),
                           ("--tls-key", a.tls_key)):
            if path and not os.path.isfile(path):
                raise UsageError(f"{flag} {path}: no such file")
        if bool(a.tls_cert) != bool(a.tls_key):
            raise UsageError("--tls-cert and --tls-key go together")
    elif a.ca_file or a.no_verify or a.sips or a.tls_cert or a.tls_key:
        raise UsageError("--ca-file, --no-verify, --sips, --tls-cert and --tls-key "
                         "are for --transport tls")
    for flag, value in (("--to", a.to), ("--registrar", a.registrar), ("--proxy", a.proxy)):
        if value and value.lower().startswith("sips:") and a.transport != "tls":
            raise UsageError(f"{flag} {value}: a sips: URI needs --transport tls")
    if a.play and not os.path.isfile(a.play):
        raise UsageError(f"--play {a.play}: no such file")
    for hz in [a.tone_hz, *a.check_hz]:
        if hz is not None and not 0 < hz * audio.NEIGHBOUR_FACTORS[1] < 4000:
            raise UsageError(f"tone {hz} Hz: it and its upper neighbour "
                             f"({audio.NEIGHBOUR_FACTORS[1]}x) must lie in (0, 4000) Hz")

    if a.role == "agent":
        if a.to or a.cancel_after is not None or a.header:
            raise UsageError("--to, --cancel-after and --header are for --role caller")
        users = a.user or ["agent"]
        n = a.accounts or len(users)
        if n > MAX_ACCOUNTS:
            raise UsageError(
                f"--accounts {n}: at most {MAX_ACCOUNTS} accounts per process "
                "(pjsua2 wheel compile-time limit); start more processes")
        if n < 1:
            raise UsageError("--accounts must be at least 1")
        if len(users) != n:
            raise UsageError(f"--accounts {n} needs {n} --user values (got {len(users)})")
        a.users = users
        a.calls = 0 if a.calls is None else a.calls
        if a.calls < 0 or a.calls > 10000:
            raise UsageError("--calls (agent) must be in 0..10000")
    else:
        if not a.to:
            raise UsageError("--role caller needs --to sip:DID@host:port")
        if a.answer != "auto" or a.answer_delay:
            raise UsageError("--answer and --answer-delay are for --role agent")
        a.calls = 1 if a.calls is None else a.calls
        if a.calls > MAX_CALLS:
            raise UsageError(
                f"--calls {a.calls}: at most {MAX_CALLS} simultaneous calls per process "
                "(pjsua2 wheel compile-time limit, PJ_ETOOMANY); start more processes")
        if a.calls < 1:
            raise UsageError("--calls must be at least 1")
        if len(a.user) > 1:
            raise UsageError("a caller has one account: give --from-user (or one --user)")
        a.users = [a.from_user or (a.user[0] if a.user else "caller")]
        if not a.to.startswith(("sip:", "sips:")):
            a.to = "sip:" + a.to
    for h in a.header:
        if ":" not in h:
            raise UsageError(f"--header {h!r}: expected 'Name: value'")
    # Loopback only: whatever this UA sends SIP to must be on 127.0.0.0/8.
    targets = [("--registrar", a.registrar), ("--proxy", a.proxy)]
    if a.role == "caller" and not a.proxy:
        targets.append(("--to", a.to))
    for flag, value in targets:
        if value and not is_loopback(uri_host(sip_uri(value))):
            raise UsageError(f"{flag} {value}: only loopback (127.0.0.0/8) targets are allowed")
    return a


def is_loopback(hostport: str) -> bool:
    """True for 127.x.y.z, localhost or [::1], with or without a port."""
    host = hostport.strip()
    if host.startswith("["):
        return host[1:].split("]", 1)[0] == "::1"
    host = host.split(":", 1)[0].lower()
    if host == "localhost":
        return True
    parts = host.split(".")
    return (len(parts) == 4 and parts[0] == "127"
            and all(p.isdigit() and int(p) < 256 for p in parts))


# ---------------------------------------------------------------------------
# SIP helpers

def sip_uri(value: str, transport: str = "udp", sips: bool = False) -> str:
    """host:port or a SIP URI -> SIP URI for ``transport``.

    TCP and TLS add ``;transport=tcp|tls`` (unless a transport is given), except that
    with ``sips`` (TLS only) the scheme becomes ``sips:`` and no parameter is added:
    a sips: URI means TLS already (RFC 3261 §19.1.2, §26.2).
    """
    uri = value if value.lower().startswith(("sip:", "sips:")) else "sip:" + value
    if transport == "tls" and sips:
        return "sips:" + uri.split(":", 1)[1] if uri.lower().startswith("sip:") else uri
    if uri.lower().startswith("sips:"):
        return uri
    if transport in ("tcp", "tls") and "transport=" not in uri.lower():
        param = f";transport={transport}"
        if ">" in uri:
            uri = uri.replace(">", param + ">", 1)
        else:
            uri += param
    return uri


_VIA_PROTOCOL = re.compile(r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)", re.I)


def via_transport(raw: str):
    """The protocol of the top Via of a raw SIP message ("UDP", "TCP", "TLS"), or None."""
    if not raw:
        return None
    via = parse_request(raw)["headers"].get("via")
    m = _VIA_PROTOCOL.match(via or "")
    return m.group(1).upper() if m else None


def uri_host(uri: str) -> str:
    """Host (and port) of a SIP URI, without user and parameters."""
    m = re.match(r"^\s*(?:.*<)?sips?:(?:[^@;>]*@)?([^;>?]+)", uri)
    return m.group(1) if m else "127.0.0.1"


_NAME_ADDR = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>(.*)$')


def parse_name_addr(value: str) -> dict:
    """Split a From/To header value into display name, URI and user."""
    display, uri = None, value.strip()
    m = _NAME_ADDR.match(value)
    if m:
        if m.group(1) is not None:
            display = re.sub(r"\\(.)", r"\1", m.group(1))
        elif m.group(2):
            display = m.group(2).strip() or None
        uri = m.group(3)
    else:
        uri = uri.split(";", 1)[0]
    um = re.match(r"^sips?:([^@;>]*)@", uri)
    return {"display": display, "uri": uri, "user": um.group(1) if um else None}


_COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "v": "via"}


def wav_complete(path: str) -> bool:
    """True once PJSIP's WAV writer has closed ``path`` (its RIFF header is filled in)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    return (len(head) == 8 and head[:4] == b"RIFF"
            and int.from_bytes(head[4:8], "little") == size - 8)


def parse_request(raw: str) -> dict:
    """Request line and headers (lower-case names) of a raw SIP request."""
    head = raw.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    lines = [ln.rstrip("\r") for ln in head.split("\n")]
    out = {"request_uri": None, "headers": {}}
    if lines:
        parts = lines[0].split(" ")
        if len(parts) >= 2:
            out["request_uri"] = parts[1]
    name = None
    for ln in lines[1:]:
        if ln[:1] in (" ", "\t") and name:
            out["headers"][name] += " " + ln.strip()
            continue
        if ":" not in ln:
            continue
        k, v = ln.split(":", 1)
        name = _COMPACT.get(k.strip().lower(), k.strip().lower())
        if name not in out["headers"]:
            out["headers"][name] = v.strip()
    return out


_CSEQ = re.compile(r"^CSeq:\s*(\d+)\s+(\S+)", re.M | re.I)


def tsx_key(tsx):
    """Identity of a pj.SipTransaction: role and CSeq (from its last message)."""
    try:
        m = _CSEQ.search(tsx.lastTx.wholeMsg or "")
    except Exception:
        m = None
    if m:
        return (int(tsx.role), int(m.group(1)), m.group(2).upper())
    try:
        return (int(tsx.role), "ptr", int(tsx.pjTransaction))
    except TypeError:
        return (int(tsx.role), "ptr", repr(tsx.pjTransaction))


# ---------------------------------------------------------------------------


def main(argv) -> int:
    try:
        args = parse_args(argv)
    except UsageError as e:
        emit("error", message=str(e), kind="usage")
        print(f"ua.py: {e}", file=sys.stderr)
        return EXIT_USAGE
    ua = UserAgent(args)
    return ua.run()


class CallRec:
    """What the harness tracks for one call."""

    def __init__(self, idx, acc_index, direction):
        self.idx = idx
        self.acc_index = acc_index
        self.direction = direction
        self.call = None
        self.started = time.monotonic()
        self.confirmed_at = None
        self.media_updates = 0
        self.port_id = None
        self.player = None
        self.recorder = None
        self.rec_path = None
        self.local_hangup = None
        self.disconnected = False
        self.finalized = False
        self.rx_pkts_done = 0
        self.tx_pkts_done = 0
        self.rx_pkts_cur = 0
        self.tx_pkts_cur = 0
        self.codec = None
        self.tsx_seen = set()
        self.answered = False
        self.release_deadline = None
        self.media_index = 0
        self.initial_tsx = set()


class UserAgent:
    def __init__(self, args):
        self.args = args
        self.pj = None
        self.ep = None
        self.tid = None
        self.accounts = []
        self.calls = {}  # idx -> CallRec
        self.next_idx = 0
        self.ended = 0
        self.timers = []  # (when, seq, fn, label)
        self.timer_seq = 0
        self.quit_reason = None
        self.commands = queue.Queue()
        self.tmp_dir = None
        self.record_dir = None
        self.exit_code = EXIT_OK
        self.name = args.name or args.role

    # -- scheduling ---------------------------------------------------------

    def at(self, delay, fn, label):
        self.timer_seq += 1
        self.timers.append((time.monotonic() + max(0.0, delay), self.timer_seq, fn, label))

    def run_timers(self):
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        if not due:
            return
        self.timers = [t for t in self.timers if t[0] > now]
        for _, _, fn, label in sorted(due, key=lambda t: (t[0], t[1])):
            try:
                fn()
            except Exception as e:  # a PJSIP error on one call must not kill the UA
                emit("error", message=f"{label}: {e}", kind="action")

    # -- setup --------------------------------------------------------------

    def setup(self):
        import pjsua2 as pj

        self.pj = pj
        a = self.args
        ep = pj.Endpoint()
        self.ep = ep
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = MAX_CALLS
        cfg.uaConfig.userAgent = "amico-peers-pjsua2/" + ep.libVersion().full
        cfg.logConfig.level = a.log_level
        cfg.logConfig.consoleLevel = a.log_level
        cfg.medConfig.noVad = True
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.sndAutoCloseTime = -1
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)

        tcfg = pj.TransportConfig()
        tcfg.port = a.local_port
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        ttype = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP,
                 "tls": pj.PJSIP_TRANSPORT_TLS}[a.transport]
        if a.transport == "tls":
            tls = tcfg.tlsConfig
            # PJSIP checks the chain against CaListFile and the server's name against
            # the certificate's subjectAltName (sip_transport_tls.c).
            tls.verifyServer = not a.no_verify
            if a.ca_file:
                tls.CaListFile = os.path.abspath(a.ca_file)
            if a.tls_cert:
                tls.certFile = os.path.abspath(a.tls_cert)
                tls.privKeyFile = os.path.abspath(a.tls_key)
            tls.msecTimeout = 5000
        self.tid = ep.transportCreate(ttype, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()

        prio = {"PCMU": 0, "PCMA": 0}
        for i, c in enumerate(a.codec_list):
            prio[c] = 255 - i
        for ci in ep.codecEnum2():
            base = ci.codecId.split("/")[0].upper()
            want = prio.get(base, 0) if ci.codecId.upper().startswith(base + "/8000") else 0
            ep.codecSetPriority(ci.codecId, want)

        tinfo = ep.transportGetInfo(self.tid)
        host, _, port = tinfo.localName.rpartition(":")
        self.local_host = host or "127.0.0.1"
        self.local_port = int(port)

        if a.record_dir:
            os.makedirs(a.record_dir, exist_ok=True)
            self.record_dir = a.record_dir
        elif a.tone_hz is not None or a.check_hz:
            self.tmp_dir = tempfile.mkdtemp(prefix="ua-rec-")
            self.record_dir = self.tmp_dir

        ua = self
        pj_ = pj

        class Acc(pj_.Account):
            def __init__(self, index, user):
                pj_.Account.__init__(self)
                self.index = index
                self.user = user
                self.unregistering = False
                self.unregistered = False

            def onRegState(self, prm):
                try:
                    ua.on_reg_state(self, prm)
                except Exception:
                    ua.internal_error("onRegState")

            def onIncomingCall(self, prm):
                try:
                    ua.on_incoming(self, prm)
                except Exception:
                    ua.internal_error("onIncomingCall")

        class UaCall(pj_.Call):
            def __init__(self, acc, rec, call_id=pj_.PJSUA_INVALID_ID):
                pj_.Call.__init__(self, acc, call_id)
                self.rec = rec

            def onCallState(self, prm):
                try:
                    ua.on_call_state(self, prm)
                except Exception:
                    ua.internal_error("onCallState")

            def onCallMediaState(self, prm):
                try:
                    ua.on_media_state(self)
                except Exception:
                    ua.internal_error("onCallMediaState")

            def onCallTsxState(self, prm):
                try:
                    ua.on_tsx_state(self, prm)
                except Exception:
                    ua.internal_error("onCallTsxState")

            def onStreamDestroyed(self, prm):
                try:
                    ua.on_stream_destroyed(self, prm)
                except Exception:
                    ua.internal_error("onStreamDestroyed")

            def onDtmfDigit(self, prm):
                method = "rfc4733" if prm.method == pj_.PJSUA_DTMF_METHOD_RFC2833 else "info"
                emit("dtmf_received", call=self.rec.idx, digit=prm.digit, method=method)

        self.Acc = Acc
        self.UaCall = UaCall

        domain = None
        if a.registrar:
            domain = uri_host(sip_uri(a.registrar))
        for i, user in enumerate(a.users):
            acfg = pj.AccountConfig()
            if a.role == "caller":
                d = a.from_domain or domain or uri_host(a.to)
            else:
                d = domain or f"{self.local_host}:{self.local_port}"
            uri = f"{self.scheme}:{user}@{d}"
            if a.role == "caller" and a.from_display:
                disp = a.from_display.replace("\\", "\\\\").replace('"', '\\"')
                acfg.idUri = f'"{disp}" <{uri}>'
            else:
                acfg.idUri = uri
            if a.registrar:
                acfg.regConfig.registrarUri = self.uri(a.registrar)
                acfg.regConfig.timeoutSec = a.expires
                acfg.regConfig.registerOnAdd = True
                acfg.regConfig.retryIntervalSec = 0
            else:
                acfg.regConfig.registerOnAdd = False
            if a.password is not None:
                cred = pj.AuthCredInfo("digest", "*", a.auth_user or user, 0, a.password)
                acfg.sipConfig.authCreds.append(cred)
            if a.proxy:
                acfg.sipConfig.proxies.append(self.uri(a.proxy) + ";lr"
                                              if "lr" not in a.proxy else self.uri(a.proxy))
            acfg.sipConfig.transportId = self.tid
            acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
            acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
            acfg.mediaConfig.transportConfig.port = 0
            acfg.mediaConfig.lockCodecEnabled = not a.no_lock_codec
            acfg.natConfig.iceEnabled = False
            acfg.natConfig.sdpNatRewriteUse = 0
            acc = Acc(i, user)
            acc.create(acfg, False)
            acc.uri = acfg.idUri
            self.accounts.append(acc)

        extra = {}
        if a.transport == "tls":
            extra["tls"] = {"verify_server": not a.no_verify, "ca_file": a.ca_file,
                            "cert_file": a.tls_cert, "sips": a.sips}
        emit("ready", role=a.role, transport=a.transport, host=self.local_host,
             port=self.local_port, sip=f"{self.local_host}:{self.local_port}",
             contact=self.uri(f"{self.local_host}:{self.local_port}"),
             accounts=[{"index": x.index, "user": x.user, "uri": x.uri} for x in self.accounts],
             pid=os.getpid(), pjsip=self.ep.libVersion().full, **extra)

    @property
    def scheme(self):
        """The scheme of the URIs this UA writes: sips with --sips, else sip."""
        return "sips" if self.args.sips else "sip"

    def uri(self, value):
        """``value`` (host:port or a URI) as a URI for this UA's transport."""
        return sip_uri(value, self.args.transport, self.args.sips)

    def internal_error(self, where):
        emit("error", message=f"{where}: {traceback.format_exc(limit=3)}", kind="internal")

    # -- callbacks ------------------------------------------------------------

    def on_reg_state(self, acc, prm):
        raw = prm.rdata.wholeMsg if prm.rdata is not None else ""
        fields = dict(account=acc.index, user=acc.user, code=prm.code, reason=prm.reason,
                      expires=prm.expiration, via_transport=via_transport(raw),
                      source=(prm.rdata.srcAddress or None) if raw else None)
        if acc.unregistering:
            acc.unregistered = True
            emit("unregistered", **fields)
        elif 200 <= prm.code < 300 and prm.expiration > 0:
            emit("registered", **fields)
        else:
            emit("registration_failed", **fields)

    def on_incoming(self, acc, prm):
        pj = self.pj
        a = self.args
        rec = CallRec(self.next_idx, acc.index, "in")
        self.next_idx += 1
        call = self.UaCall(acc, rec, prm.callId)
        rec.call = call
        self.calls[rec.idx] = rec
        req = parse_request(prm.rdata.wholeMsg)
        frm = parse_name_addr(req["headers"].get("from", ""))
        to = parse_name_addr(req["headers"].get("to", ""))
        ci = call.getInfo()
        emit("incoming", call=rec.idx, account=acc.index, user=acc.user,
             remote_uri=ci.remoteUri, from_display=frm["display"], from_user=frm["user"],
             from_uri=frm["uri"], from_header=req["headers"].get("from"),
             to_user=to["user"], to_uri=to["uri"], request_uri=req["request_uri"],
             call_id=ci.callIdString, source=prm.rdata.srcAddress,
             via_transport=via_transport(prm.rdata.wholeMsg),
             x_headers={k: v for k, v in req["headers"].items() if k.startswith("x-")})
        if a.answer == "reject":
            op = pj.CallOpParam()
            op.statusCode = a.reject_code
            rec.local_hangup = "reject"
            call.answer(op)
            return
        op = pj.CallOpParam()
        op.statusCode = 180
        call.answer(op)
        if a.answer == "auto":
            if a.answer_delay > 0:
                self.at(a.answer_delay, lambda r=rec: self.answer(r), f"answer call {rec.idx}")
            else:
                self.answer(rec)

    def answer(self, rec, code=200):
        if rec.disconnected or rec.answered:
            return
        op = self.pj.CallOpParam()
        op.statusCode = code
        if code >= 300:
            rec.local_hangup = "reject"
        else:
            rec.answered = True
        rec.call.answer(op)

    def on_call_state(self, call, prm):
        pj = self.pj
        rec = call.rec
        ci = call.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            if rec.confirmed_at is None:
                rec.confirmed_at = time.monotonic()
                emit("confirmed", call=rec.idx, remote_uri=ci.remoteUri,
                     remote_contact=ci.remoteContact, call_id=ci.callIdString)
                a = self.args
                if a.hangup_after is not None:
                    self.at(a.hangup_after, lambda r=rec: self.hangup(r, "hangup-after"),
                            f"hangup call {rec.idx}")
                if a.dtmf:
                    self.at(a.dtmf_delay, lambda r=rec: self.send_dtmf(r, a.dtmf),
                            f"dtmf call {rec.idx}")
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if not rec.disconnected:
                rec.disconnected = True
                emit("disconnected", call=rec.idx, code=ci.lastStatusCode,
                     reason=ci.lastReason, by=("local" if rec.local_hangup else "remote"),
                     local_reason=rec.local_hangup,
                     duration=round(ci.connectDuration.sec + ci.connectDuration.msec / 1000, 3),
                     total_duration=round(ci.totalDuration.sec + ci.totalDuration.msec / 1000, 3),
                     confirmed=rec.confirmed_at is not None)

    def on_media_state(self, call):
        pj = self.pj
        rec = call.rec
        ci = call.getInfo()
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if mi.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
                emit("media_state", call=rec.idx, status=int(mi.status))
                continue
            am = call.getAudioMedia(mi.index)
            port = am.getPortId()
            if rec.recorder is None and self.record_dir:
                rec.rec_path = os.path.join(
                    self.record_dir, f"{self.name}-{os.getpid()}-call{rec.idx}.wav")
                rec.recorder = pj.AudioMediaRecorder()
                rec.recorder.createRecorder(rec.rec_path)
            if rec.player is None and self.args.play:
                rec.player = pj.AudioMediaPlayer()
                rec.player.createPlayer(self.args.play, 0)
            if port != rec.port_id:
                if rec.recorder is not None:
                    am.startTransmit(rec.recorder)
                if rec.player is not None:
                    rec.player.startTransmit(am)
                rec.port_id = port
            try:
                si = call.getStreamInfo(mi.index)
                rec.codec = f"{si.codecName}/{si.codecClockRate}"
                remote = si.remoteRtpAddress
            except Exception:
                remote = None
            emit("media_active", call=rec.idx, update=rec.media_updates, codec=rec.codec,
                 remote_rtp=remote, conf_port=port)
            rec.media_updates += 1
            rec.media_index = mi.index
            break

    def on_tsx_state(self, call, prm):
        """Provisional answers to our INVITE (``ringing``) and the final answer of
        each in-dialog re-INVITE / UPDATE, either way (``reinvite``)."""
        pj = self.pj
        rec = call.rec
        e = prm.e
        if e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx = e.body.tsxState.tsx
        if tsx.method not in ("INVITE", "UPDATE"):
            return
        code = tsx.statusCode
        key = tsx_key(tsx)
        if rec.confirmed_at is None:
            # Everything before confirmation belongs to the initial INVITE
            # (including its retry with credentials after a 401/407).
            rec.initial_tsx.add(key)
            if (tsx.method == "INVITE" and tsx.role == pj.PJSIP_ROLE_UAC
                    and 100 < code < 200 and ("ringing", code) not in rec.tsx_seen):
                rec.tsx_seen.add(("ringing", code))
                emit("ringing", call=rec.idx, code=code, reason=tsx.statusText)
            return
        if key in rec.initial_tsx or code < 200:
            return
        if tsx.state not in (pj.PJSIP_TSX_STATE_COMPLETED, pj.PJSIP_TSX_STATE_TERMINATED):
            return
        if ("tsx", key) in rec.tsx_seen:
            return
        rec.tsx_seen.add(("tsx", key))
        emit("reinvite", call=rec.idx, method=tsx.method,
             direction="sent" if tsx.role == pj.PJSIP_ROLE_UAC else "received",
             code=code, reason=tsx.statusText)

    def on_stream_destroyed(self, call, prm):
        rec = call.rec
        try:
            st = call.getStreamStat(prm.streamIdx)
            rec.rx_pkts_done += st.rtcp.rxStat.pkt
            rec.tx_pkts_done += st.rtcp.txStat.pkt
        except Exception:
            rec.rx_pkts_done += rec.rx_pkts_cur
            rec.tx_pkts_done += rec.tx_pkts_cur
        rec.rx_pkts_cur = rec.tx_pkts_cur = 0

    # -- actions ------------------------------------------------------------

    def hangup(self, rec, why, code=None):
        if rec.disconnected or rec.call is None:
            return
        op = self.pj.CallOpParam()
        if code:
            op.statusCode = code
        if rec.local_hangup is None:
            rec.local_hangup = why
        emit("hangup", call=rec.idx, reason=why,
             kind="bye" if rec.confirmed_at is not None else
             ("cancel" if rec.direction == "out" else "reject"))
        rec.call.hangup(op)

    def send_dtmf(self, rec, digits):
        if rec.disconnected or rec.confirmed_at is None:
            return
        prm = self.pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = self.pj.PJSUA_DTMF_METHOD_RFC2833
        rec.call.sendDtmf(prm)
        emit("dtmf_sent", call=rec.idx, digits=digits, method="rfc4733")

    def make_calls(self):
        pj = self.pj
        a = self.args
        acc = self.accounts[0]
        for _ in range(a.calls):
            rec = CallRec(self.next_idx, acc.index, "out")
            self.next_idx += 1
            call = self.UaCall(acc, rec)
            rec.call = call
            self.calls[rec.idx] = rec
            op = pj.CallOpParam(True)
            op.opt.audioCount = 1
            op.opt.videoCount = 0
            for h in a.header:
                name, value = h.split(":", 1)
                sh = pj.SipHeader()
                sh.hName = name.strip()
                sh.hValue = value.strip()
                op.txOption.headers.append(sh)
            to = self.uri(a.to)
            try:
                call.makeCall(to, op)
            except Exception as e:
                rec.disconnected = True
                emit("error", call=rec.idx, message=f"makeCall {to}: {e}", kind="call")
                emit("disconnected", call=rec.idx, code=0, reason=str(e), by="local",
                     local_reason="makeCall failed", duration=0.0, total_duration=0.0,
                     confirmed=False)
                continue
            emit("calling", call=rec.idx, to=to)
            if a.cancel_after is not None:
                self.at(a.cancel_after, lambda r=rec: self.cancel_if_unanswered(r),
                        f"cancel call {rec.idx}")

    def cancel_if_unanswered(self, rec):
        if rec.confirmed_at is None and not rec.disconnected:
            self.hangup(rec, "cancel-after")

    # -- main loop pieces ---------------------------------------------------

    def poll_stats(self):
        for rec in self.calls.values():
            if rec.disconnected or rec.call is None or rec.port_id is None:
                continue
            try:
                st = rec.call.getStreamStat(rec.media_index)
                rec.rx_pkts_cur = st.rtcp.rxStat.pkt
                rec.tx_pkts_cur = st.rtcp.txStat.pkt
            except Exception:
                pass

    def finalize_disconnected(self):
        """Release a disconnected call's media, then report its audio.

        Destroying the recorder only asks the conference bridge to remove its port;
        the bridge does that on its next clock tick, and only then is the WAV
        header written. So the report waits (bounded) until the file is complete.
        """
        now = time.monotonic()
        for idx in sorted(self.calls):
            rec = self.calls[idx]
            if not rec.disconnected or rec.finalized:
                continue
            if rec.release_deadline is None:
                rec.release_deadline = now + WAV_CLOSE_SECS
                rec.player = None
                rec.recorder = None  # the WAV header is written once the port is gone
                rec.call = None  # never delete a pj.Call inside its own callback: done here
                gc.collect()
            if rec.rec_path and not wav_complete(rec.rec_path) and now < rec.release_deadline:
                continue
            rec.finalized = True
            self.ended += 1
            if rec.rec_path:
                self.report_audio(rec)

    def report_audio(self, rec):
        a = self.args
        fields = dict(call=rec.idx, file=None if self.tmp_dir else rec.rec_path,
                      codec=rec.codec, rx_packets=rec.rx_pkts_done + rec.rx_pkts_cur,
                      tx_packets=rec.tx_pkts_done + rec.tx_pkts_cur, tone_hz=a.tone_hz)
        try:
            samples, rate = audio.read_wav(rec.rec_path)
        except Exception as e:
            emit("audio", verdict="no-recording", present=False, error=str(e),
                 duration=0.0, **fields)
            return
        fields["duration"] = round(len(samples) / rate, 3) if rate else 0.0
        checks = []
        for hz in a.check_hz:
            r = audio.analyze_samples(samples, rate, hz)
            checks.append({"hz": hz, "present": r["present"], "power": r["power"],
                           "present_secs": r["present_secs"]})
        fields["checks"] = checks
        if a.tone_hz is None:
            emit("audio", verdict="unchecked", present=None, **fields)
            return
        r = audio.analyze_samples(samples, rate, a.tone_hz)
        emit("audio", verdict="present" if r["present"] else "absent", present=r["present"],
             power=r["power"], neighbours_hz=r["neighbours_hz"],
             neighbour_power=r["neighbour_power"], present_secs=r["present_secs"], **fields)

    def poll_commands(self):
        for _ in range(100):
            try:
                line = self.commands.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self.request_quit("stdin closed")
                continue
            parts = line.split()
            if not parts:
                continue
            cmd, rest = parts[0].lower(), parts[1:]

            def target(i=0):
                live = [r for r in self.calls.values() if not r.disconnected]
                if len(rest) > i:
                    r = self.calls.get(int(rest[i]))
                    return [r] if r and not r.disconnected else []
                return live
            try:
                if cmd == "quit":
                    self.request_quit("quit command")
                elif cmd == "hangup":
                    for r in target():
                        self.hangup(r, "command")
                elif cmd == "answer":
                    for r in target():
                        if r.direction == "in":
                            self.answer(r)
                elif cmd == "reject":
                    code = int(rest[1]) if len(rest) > 1 else self.args.reject_code
                    for r in target():
                        if r.direction == "in" and r.confirmed_at is None:
                            self.answer(r, code)
                elif cmd == "dtmf" and rest:
                    digits, rest = rest[0], rest[1:]
                    for r in target():
                        self.send_dtmf(r, digits)
                else:
                    emit("error", message=f"unknown command {line!r}", kind="command")
            except Exception as e:
                emit("error", message=f"command {line!r}: {e}", kind="command")

    def request_quit(self, why):
        if self.quit_reason is None:
            self.quit_reason = why

    def finished(self):
        a = self.args
        if self.quit_reason is not None:
            return True
        if a.role == "caller":
            return bool(self.calls) and all(r.finalized for r in self.calls.values())
        return a.calls > 0 and self.ended >= a.calls

    def pump(self, secs, until=None):
        """Handle events for at most ``secs`` seconds, or until ``until()`` holds."""
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if until is not None and until():
                return True
            self.ep.libHandleEvents(POLL_MS)
            self.finalize_disconnected()
        return until() if until is not None else True

    # -- lifecycle ------------------------------------------------------------

    def start_stdin_reader(self):
        q = self.commands

        def reader():
            try:
                for line in sys.stdin:
                    q.put(line.strip())
            except Exception:
                pass
            q.put(None)

        threading.Thread(target=reader, name="stdin", daemon=True).start()

    def run(self) -> int:
        a = self.args
        deadline = _T0 + a.timeout
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda s, f: self.request_quit(f"signal {s}"))
        try:
            self.setup()
        except Exception as e:
            emit("error", message=f"setup failed: {e}", kind="setup")
            traceback.print_exc()
            self.exit_code = EXIT_FAILURE
            return self.shutdown()
        if a.stdin_control:
            self.start_stdin_reader()
        if a.role == "caller":
            self.make_calls()
        next_stats = time.monotonic() + STATS_EVERY
        try:
            while not self.finished():
                if time.monotonic() >= deadline:
                    emit("error", message=f"timeout: still running after {a.timeout} s "
                         "(--timeout)", kind="timeout")
                    self.exit_code = EXIT_TIMEOUT
                    break
                self.ep.libHandleEvents(POLL_MS)
                self.run_timers()
                self.poll_commands()
                self.finalize_disconnected()
                if time.monotonic() >= next_stats:
                    self.poll_stats()
                    next_stats = time.monotonic() + STATS_EVERY
        except Exception as e:
            emit("error", message=f"main loop: {e}", kind="internal")
            traceback.print_exc()
            self.exit_code = EXIT_FAILURE
        return self.shutdown()

    def shutdown(self) -> int:
        ep = self.ep
        keep_accounts = False
        try:
            if ep is not None and self.pj is not None:
                live = [r for r in self.calls.values() if not r.disconnected]
                for r in live:
                    try:
                        self.hangup(r, "exit")
                    except Exception as e:
                        emit("error", message=f"hangup at exit: {e}", kind="action")
                if live:
                    self.pump(CLEANUP_SECS, lambda: all(r.disconnected for r in live))
                self.poll_stats()
                for r in self.calls.values():
                    r.disconnected = True
                self.pump(WAV_CLOSE_SECS + 0.5,
                          lambda: all(r.finalized for r in self.calls.values()))
                if self.args.unregister_at_end and self.args.registrar:
                    for acc in self.accounts:
                        try:
                            acc.unregistering = True
                            acc.setRegistration(False)
                        except Exception as e:
                            acc.unregistered = True
                            emit("error", message=f"unregister {acc.user}: {e}", kind="action")
                    self.pump(CLEANUP_SECS, lambda: all(x.unregistered for x in self.accounts))
                self.calls.clear()
                if self.args.registrar and not self.args.unregister_at_end:
                    # Leave the registration in place, as a phone that vanished
                    # would: deleting an Account always sends an un-REGISTER, so
                    # instead libDestroy(NO_TX_MSG) tears it down silently below
                    # and os._exit skips the Python destructors that would
                    # otherwise abort after libDestroy.
                    keep_accounts = True
                if not keep_accounts:
                    for acc in self.accounts:
                        try:
                            acc.shutdown()
                        except Exception:
                            pass
                    self.accounts = []
                gc.collect()
        except Exception as e:
            emit("error", message=f"shutdown: {e}", kind="internal")
            traceback.print_exc()
            if self.exit_code == EXIT_OK:
                self.exit_code = EXIT_FAILURE
        emit("done", code=self.exit_code, calls=self.next_idx, ended=self.ended,
             reason=self.quit_reason or ("timeout" if self.exit_code == EXIT_TIMEOUT else
                                         "finished" if self.exit_code == EXIT_OK else "error"))
        try:
            _OUT.flush()
        except Exception:
            pass
        if self.tmp_dir:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
        if ep is not None:
            try:
                ep.libDestroy(self.pj.PJSUA_DESTROY_NO_TX_MSG if keep_accounts
                              else self.pj.PJSUA_DESTROY_NO_NETWORK)
            except Exception:
                pass
        sys.stderr.flush()
        os._exit(self.exit_code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
