// A browser SIP agent for Amico's tests: JsSIP 3.13 (or, with `--library sipjs`, SIP.js
// 0.21) in a page of headless Chromium, driven by playwright-core, registered over SIP
// over WebSocket (RFC 7118), taking calls with WebRTC media. Driven by flags and by
// commands on stdin; reports what happens as JSON lines on stdout. The Rust side is
// tests/support/browser.rs (`SipAgent`).
//
//   node sip-agent.mjs --modules DIR [--jssip FILE] --ws URL --uri SIP_URI --password PW
//                      [options]
//
// Options:
//   --modules DIR        node_modules holding playwright-core and sip.js
//                        (tests/support/browser.rs installs tests/browser/package-lock.json
//                        into target/browser)
//   --library NAME       jssip (default) or sipjs: the SIP library of the page
//   --jssip FILE         JsSIP bundled for the browser (esbuild, an IIFE defining
//                        `JsSIP`), needed with jssip; browser.rs writes
//                        target/browser/jssip.js. SIP.js is ESM: the page imports it as
//                        it is from DIR/sip.js/lib.
//   --chromium PATH      the browser (default /usr/bin/chromium)
//   --ws URL             the server's SIP WebSocket, e.g. ws://127.0.0.1:8080/sip
//   --uri SIP_URI        the agent's address of record, e.g. sip:agent1@127.0.0.1
//   --password PW        its SIP password (digest)
//   --user NAME          the digest user name, when it is not the URI's user
//   --display-name NAME  the display name in From
//   --expires SECONDS    Expires asked for in REGISTER (default 600, JsSIP's)
//   --instance-id UUID   +sip.instance of the Contact (RFC 5626), kept across `reload` as
//                        an application keeping it in localStorage would (default: a new
//                        UUID per process)
//   --no-register        connect only; `register` registers
//   --answer MODE        incoming calls: manual (default: wait for `answer`/`reject`),
//                        auto (answer at once), reject (reject at once, --reject-code)
//   --reject-code CODE   the answer `--answer reject` gives (default 486)
//   --audio FILE.wav     the fake microphone (--use-file-for-fake-audio-capture, looped);
//                        without it Chromium's fake device beeps
//
// The page is served by a small HTTP server of this process on 127.0.0.1:0 (a secure
// context, as getUserMedia wants), with the JsSIP bundle at /jssip.js and SIP.js under
// /sip.js/. Chromium runs with a fresh user-data folder (Playwright's, removed on close)
// and the flags of PEERS.md (fake media devices and UI, loopback ICE candidates allowed,
// no name resolution but 127.0.0.1). The page's SDP keeps only its 127.0.0.1 ICE
// candidates (Chromium also gathers the machine's other addresses); the remote audio of
// each call plays in an <audio> element, so that Chromium decodes it (and getStats counts
// its energy).
//
// Events: one JSON object per line, each with "event" and "t" (seconds since start).
// "call" is this process's index of an incoming call (0, 1, ..., across reloads).
//
//   ready               browser (Chromium's version), library (jssip|sipjs), version
//                       (as the library says), package (its npm package's version),
//                       jssip (JsSIP's version, null with SIP.js), page (URL), ws, uri,
//                       instance_id
//   connecting          attempts                  (the WebSocket is being opened)
//   connected           ws                        (the WebSocket is open, subprotocol sip)
//   disconnected        error (true when it did not close cleanly or never opened), code
//                       and reason (the WebSocket's close code and reason), requested
//                       (true after `drop`, `quit` or `reload`)
//   websocket_error     url, error: Chromium's words for a WebSocket that failed, e.g.
//                       "Error during WebSocket handshake: Unexpected response code: 404"
//   sip                 direction (sent|received), line (the start line), cseq, call_id:
//                       every SIP message over the WebSocket, as Chromium saw the frame
//   registered          code, reason, contact (the 200's Contact values), expires (its
//                       Expires header, if any)
//   unregistered        code, reason (null when no un-REGISTER was answered: JsSIP says
//                       unregistered when its WebSocket closes), cause
//   registration_failed code, reason (null without an answer), cause (JsSIP's, e.g.
//                       "Authentication Error", "Connection Error", "Request Timeout")
//   incoming            call, call_id, from_display, from_user, from_uri, to_uri,
//                       request_uri, via (the top Via), via_transport ("WS"), sdp (the
//                       offer, "" without one)
//   accepted            call                      (our 2xx was sent)
//   confirmed           call                      (the ACK came)
//   ended               call, originator (local|remote|system), cause
//   failed              call, originator, cause, code (the status when a response
//                       ended it)
//   hold_sent           call                      (`hold`: the re-INVITE with a=sendonly
//                                                 is on its way)
//   held                call                      (its 2xx came)
//   unhold_sent, unheld call                      (the same for `unhold`, a=sendrecv)
//   reinvite            call, sdp                 (a re-INVITE from the server, with SDP)
//   dtmf_sent           call, tones               (`dtmf`: queued on the RTCDTMFSender)
//   stats               call, connection (RTCPeerConnection.connectionState), ice
//                       (iceConnectionState), direction (the audio transceiver's
//                       currentDirection), inbound {packets_received, bytes_received,
//                       packets_lost, audio_level, total_audio_energy,
//                       total_samples_received, codec}, outbound {packets_sent,
//                       bytes_sent, codec}, source {audio_level, total_audio_energy} (the
//                       microphone), pair {local, remote} (the selected candidate pair,
//                       "address:port"), dtls (the transport's dtlsState), srtp_cipher,
//                       peak {hz, db, state} (the loudest frequency of the remote audio
//                       now, by a Web Audio AnalyserNode, and the AudioContext's state);
//                       inbound, outbound, source, pair and peak are null while absent
//   reloaded            page                      (after `reload`: a new page, a new UA)
//   error               message, kind (usage|setup|command|page)
//   done                reason (quit|eof)         the last line
//
// Commands on stdin, one a line (EOF: close the browser, which closes the WebSocket with
// no un-REGISTER, and exit 0):
//   quit            un-REGISTER and close (JsSIP's ua.stop()), then exit 0
//   register        REGISTER (again)
//   unregister      un-REGISTER, keeping the WebSocket open
//   drop            close the WebSocket from the page with no un-REGISTER (JsSIP's
//                   transport.disconnect(): a close frame, no SIP); JsSIP does not
//                   reconnect by itself after it
//   reconnect       open the WebSocket again; JsSIP registers again once it is open, with
//                   the same Call-ID and Contact
//   reload          reload the page: the WebSocket closes as the page goes, a new UA
//                   starts (a new Contact and REGISTER Call-ID, the same instance id)
//   answer [CALL]   answer an incoming call (default: the latest still ringing)
//   reject [CODE] [CALL]
//                   reject it with CODE (default 486)
//   hangup [CALL]   end that call (BYE once answered), or every call
//   hold [CALL]     put the call on hold (a re-INVITE offering a=sendonly; default: the
//                   latest call)
//   unhold [CALL]   take it off hold (a re-INVITE offering a=sendrecv)
//   stats [CALL]    report the call's RTCPeerConnection getStats() (a `stats` event)
//   dtmf KEYS [CALL]
//                   send KEYS as RFC 4733 events (RTCDTMFSender, 160 ms each)
// Every command is done in order; a failed one reports {"event":"error","kind":"command"}.
//
// With SIP.js the events and commands are the same but: `ended` and `failed` have cause
// null and `failed` code set only for our own rejection; `connecting` has attempts 1;
// `reconnect` sends a REGISTER once the WebSocket is open again; `hangup` of a call still
// ringing rejects it with 480. Either page captures the microphone without echo
// cancellation, noise suppression or gain control: with them, Chromium takes a steady
// test tone for noise and sends it about 15 dB down.

import { createRequire } from "node:module";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve, sep } from "node:path";
import { createInterface } from "node:readline";

const started = Date.now();

function emit(value) {
  const line = { event: value.event, t: Number(((Date.now() - started) / 1000).toFixed(3)) };
  process.stdout.write(JSON.stringify({ ...line, ...value }) + "\n");
}

function note(line) {
  process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}

function usage(message) {
  emit({ event: "error", kind: "usage", message });
  process.exit(2);
}

const argv = process.argv.slice(2);
function option(name, fallback) {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0) {
    if (i + 1 >= argv.length) usage(`--${name} needs a value`);
    return argv[i + 1];
  }
  if (fallback === undefined) usage(`missing --${name}`);
  return fallback;
}
const flag = (name) => argv.includes(`--${name}`);

const modules = resolve(option("modules"));
const library = option("library", "jssip");
if (!["jssip", "sipjs"].includes(library)) usage(`--library is jssip or sipjs, not ${library}`);
const bundle = library === "jssip" ? readFileSync(resolve(option("jssip"))) : null;
const sipjsDir = join(modules, "sip.js", "lib");
/** The npm package's version (SIP.js 0.21.2 reports itself as 0.21.1). */
const packageVersion = JSON.parse(
  readFileSync(join(modules, library === "jssip" ? "jssip" : "sip.js", "package.json"), "utf8"),
).version;
const executablePath = option("chromium", "/usr/bin/chromium");
const config = {
  ws: option("ws"),
  uri: option("uri"),
  password: option("password"),
  user: option("user", null),
  displayName: option("display-name", null),
  expires: Number(option("expires", "600")),
  instanceId: option("instance-id", randomUUID()),
  register: !flag("no-register"),
  answer: option("answer", "manual"),
  rejectCode: Number(option("reject-code", "486")),
};
if (!["manual", "auto", "reject"].includes(config.answer)) {
  usage(`--answer is manual, auto or reject, not ${config.answer}`);
}
const audio = option("audio", null);

// playwright-core lives in the test's own node_modules, not beside this script.
const require = createRequire(join(modules, "noop.js"));
const { chromium } = require("playwright-core");

// ---------------------------------------------------------------------------------------
// The page: the library's UA, its events sent to this process through `amicoEvent`, and
// `window.amico`, the same commands whichever the library.

// What both pages share: events, call numbering, the SDP filter, remote audio and stats.
const COMMON = `
"use strict";
const calls = new Map();
let nextCall = 0;
let requested = false;

function emit(event, fields) {
  window.amicoEvent(Object.assign({ event }, fields || {}));
}

/** The SDP without the ICE candidates of any address but 127.0.0.1 (PEERS.md). */
function onlyLoopback(sdp) {
  if (typeof sdp !== "string") return sdp;
  return sdp
    .split("\\r\\n")
    .filter((line) => !line.startsWith("a=candidate:") || line.split(" ")[4] === "127.0.0.1")
    .join("\\r\\n");
}

/**
 * The microphone, as captured: no echo cancellation, noise suppression or gain control,
 * which take a steady test tone for noise and all but silence it.
 */
const MICROPHONE = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };

/** Each call's analyser of its remote audio (Web Audio), by call id. */
const analysers = new Map();

/**
 * Plays a call's remote audio, so that Chromium decodes it, and analyses its spectrum
 * (the \`peak\` of \`stats\`).
 */
function play(id, stream) {
  let element = document.getElementById("remote-" + id);
  if (!element) {
    element = document.createElement("audio");
    element.id = "remote-" + id;
    element.autoplay = true;
    document.body.appendChild(element);
  }
  if (element.srcObject !== stream) {
    element.srcObject = stream;
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    context.createMediaStreamSource(stream).connect(analyser);
    context.resume().catch(() => {});
    analysers.set(id, { context, analyser });
  }
  element.play().catch((error) => emit("error", { kind: "page", message: "play: " + error }));
}

/** The loudest frequency of call \`id\`'s remote audio now: hz and its level in dBFS. */
function peak(id) {
  const found = analysers.get(id);
  if (!found) return null;
  const { context, analyser } = found;
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = 0;
  for (let i = 1; i < bins.length; i += 1) if (bins[i] > bins[best]) best = i;
  if (!Number.isFinite(bins[best])) return null;
  return { hz: (best * context.sampleRate) / analyser.fftSize, db: bins[best], state: context.state };
}

/** The latest call still ringing, or call \`id\`. */
function ringing(id, isRinging) {
  if (id !== undefined && id !== null) return byId(id);
  const found = [...calls.entries()].filter(([, c]) => isRinging(c));
  if (found.length === 0) throw new Error("no incoming call is ringing");
  return found[found.length - 1][1];
}

/** Call \`id\`, or the latest call. */
function byId(id) {
  if (id === undefined || id === null) {
    if (calls.size === 0) throw new Error("no call in this page");
    return [...calls.values()][calls.size - 1];
  }
  const found = calls.get(id);
  if (!found) throw new Error("no call " + id + " in this page");
  return found;
}

async function mediaStats(pc) {
  if (!pc) throw new Error("the call has no RTCPeerConnection (yet)");
  const report = await pc.getStats();
  const codec = (id) => {
    const c = id ? report.get(id) : null;
    return c ? c.mimeType + "/" + c.clockRate : null;
  };
  const out = {
    connection: pc.connectionState,
    ice: pc.iceConnectionState,
    direction: null,
    inbound: null,
    outbound: null,
    source: null,
    pair: null,
    dtls: null,
    srtp_cipher: null,
  };
  const audio = pc.getTransceivers().find((t) => t.receiver.track && t.receiver.track.kind === "audio");
  if (audio) out.direction = audio.currentDirection;
  const endpoint = (id) => {
    const c = report.get(id);
    return c ? c.address + ":" + c.port : null;
  };
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.inbound = {
        packets_received: s.packetsReceived ?? 0,
        bytes_received: s.bytesReceived ?? 0,
        packets_lost: s.packetsLost ?? 0,
        audio_level: s.audioLevel ?? null,
        total_audio_energy: s.totalAudioEnergy ?? null,
        total_samples_received: s.totalSamplesReceived ?? null,
        codec: codec(s.codecId),
      };
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.outbound = { packets_sent: s.packetsSent ?? 0, bytes_sent: s.bytesSent ?? 0, codec: codec(s.codecId) };
    } else if (s.type === "media-source" && s.kind === "audio") {
      out.source = { audio_level: s.audioLevel ?? null, total_audio_energy: s.totalAudioEnergy ?? null };
    } else if (s.type === "transport") {
      out.dtls = s.dtlsState ?? null;
      out.srtp_cipher = s.srtpCipher ?? null;
      if (s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        if (pair) out.pair = { local: endpoint(pair.localCandidateId), remote: endpoint(pair.remoteCandidateId) };
      }
    }
  });
  return out;
}
`;

// JsSIP 3.13: an IIFE bundle defining the global `JsSIP`.
const JSSIP_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Amico test agent (JsSIP)</title>
<script src="/jssip.js"></script>
<script>
${COMMON}
let ua = null;

function response(message) {
  if (!message || typeof message.status_code !== "number") return { code: null, reason: null };
  return { code: message.status_code, reason: message.reason_phrase || "" };
}

const isRinging = (s) => s.isInProgress() && s.direction === "incoming";

function answer(session) {
  session.answer({ mediaConstraints: { audio: MICROPHONE, video: false }, pcConfig: { iceServers: [] } });
}

function idOf(session) {
  for (const [id, s] of calls) if (s === session) return id;
  return null;
}

window.amico = {
  start(config) {
    JsSIP.debug.enable("JsSIP:*");
    // Calls are numbered across reloads.
    nextCall = config.firstCall;
    const socket = new JsSIP.WebSocketInterface(config.ws);
    const settings = {
      sockets: [socket],
      uri: config.uri,
      password: config.password,
      register: config.register,
      register_expires: config.expires,
      instance_id: config.instanceId,
      session_timers: false,
      user_agent: "Amico test agent (JsSIP " + JsSIP.version + ")",
    };
    if (config.user) settings.authorization_user = config.user;
    if (config.displayName) settings.display_name = config.displayName;
    ua = new JsSIP.UA(settings);
    ua.on("connecting", (e) => emit("connecting", { attempts: e.attempts }));
    ua.on("connected", () => emit("connected", { ws: config.ws }));
    ua.on("disconnected", (e) => {
      emit("disconnected", {
        error: Boolean(e.error),
        code: e.code === undefined ? null : e.code,
        reason: e.reason === undefined ? null : e.reason,
        requested,
      });
    });
    ua.on("registered", (e) => {
      const r = e.response;
      emit("registered", Object.assign(response(r), {
        contact: r ? r.getHeaders("Contact") : [],
        expires: r && r.hasHeader("Expires") ? r.getHeader("Expires") : null,
      }));
    });
    ua.on("unregistered", (e) => {
      emit("unregistered", Object.assign(response(e && e.response), { cause: (e && e.cause) || null }));
    });
    ua.on("registrationFailed", (e) => {
      emit("registration_failed", Object.assign(response(e.response), { cause: e.cause || null }));
    });
    ua.on("newRTCSession", (e) => {
      if (e.originator !== "remote") return;
      const session = e.session;
      const request = e.request;
      const id = nextCall;
      nextCall += 1;
      calls.set(id, session);
      session.on("sdp", (x) => {
        if (x.originator === "local") x.sdp = onlyLoopback(x.sdp);
      });
      session.on("peerconnection", (x) => {
        x.peerconnection.addEventListener("track", (t) => {
          play(id, t.streams && t.streams[0] ? t.streams[0] : new MediaStream([t.track]));
        });
      });
      session.on("reinvite", (x) => emit("reinvite", { call: id, sdp: x.request.body || "" }));
      session.on("accepted", () => emit("accepted", { call: id }));
      session.on("confirmed", () => emit("confirmed", { call: id }));
      session.on("ended", (x) => emit("ended", { call: id, originator: x.originator, cause: x.cause }));
      session.on("failed", (x) => {
        emit("failed", Object.assign({ call: id, originator: x.originator, cause: x.cause },
          { code: x.message && typeof x.message.status_code === "number" ? x.message.status_code : null }));
      });
      const from = request.from;
      emit("incoming", {
        call: id,
        call_id: request.call_id,
        from_display: from.display_name || null,
        from_user: from.uri.user,
        from_uri: from.uri.toString(),
        to_uri: request.to.uri.toString(),
        request_uri: request.ruri.toString(),
        via: request.getHeader("Via"),
        via_transport: request.via ? request.via.transport : null,
        sdp: request.body || "",
      });
      if (config.answer === "auto") {
        try { answer(session); } catch (error) { emit("error", { kind: "page", message: String(error) }); }
      } else if (config.answer === "reject") {
        session.terminate({ status_code: config.rejectCode });
      }
    });
    ua.start();
    return JsSIP.version;
  },
  register() { ua.register(); },
  unregister() { ua.unregister(); },
  drop() {
    requested = true;
    ua.transport.disconnect();
  },
  reconnect() {
    requested = false;
    if (ua.isConnected()) throw new Error("the WebSocket is open already");
    // After ua.stop() the UA restarts; after drop() only its transport is down.
    if (ua.status === ua.C.STATUS_USER_CLOSED) ua.start();
    else ua.transport.connect();
  },
  stop() {
    requested = true;
    ua.stop();
  },
  answer(id) { answer(ringing(id, isRinging)); },
  reject(code, id) { ringing(id, isRinging).terminate({ status_code: code }); },
  hangup(id) {
    if (id === null) ua.terminateSessions();
    else byId(id).terminate();
  },
  hold(id) {
    const session = byId(id);
    const call = idOf(session);
    if (!session.hold({}, () => emit("held", { call }))) {
      throw new Error("JsSIP cannot hold call " + call + " now (not confirmed, on hold, or a re-INVITE pending)");
    }
    emit("hold_sent", { call });
  },
  unhold(id) {
    const session = byId(id);
    const call = idOf(session);
    if (!session.unhold({}, () => emit("unheld", { call }))) {
      throw new Error("JsSIP cannot unhold call " + call + " now (not on hold, or a re-INVITE pending)");
    }
    emit("unhold_sent", { call });
  },
  dtmf(tones, id) {
    const session = byId(id);
    session.sendDTMF(tones, { transportType: JsSIP.C.DTMF_TRANSPORT.RFC2833, duration: 160, interToneGap: 100 });
    emit("dtmf_sent", { call: idOf(session), tones });
  },
  async stats(id) {
    const session = byId(id);
    const call = idOf(session);
    return Object.assign({ call, peak: peak(call) }, await mediaStats(session.connection));
  },
  connected() { return ua !== null && ua.isConnected(); },
};
</script></head>
<body><h1>Amico test agent (JsSIP)</h1></body></html>
`;

// SIP.js 0.21: ESM, imported as it is from node_modules/sip.js/lib (served at /sip.js/).
const SIPJS_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>Amico test agent (SIP.js)</title>
<script type="module">
import * as SIP from "/sip.js/index.js";
${COMMON}
let ua = null;
let registerer = null;
let config = null;
/** The state of each call: its id, and whether it was ever established. */
const states = new Map();

function response(message) {
  if (!message || typeof message.statusCode !== "number") return { code: null, reason: null };
  return { code: message.statusCode, reason: message.reasonPhrase || "" };
}

const isRinging = (s) => s instanceof SIP.Invitation && s.state === SIP.SessionState.Initial;

function idOf(session) {
  for (const [id, s] of calls) if (s === session) return id;
  return null;
}

/** The default description handler, its SDP keeping only 127.0.0.1 candidates. */
function descriptionHandlerFactory() {
  const factory = SIP.Web.defaultSessionDescriptionHandlerFactory();
  return (session, options) => {
    const handler = factory(session, options);
    const getDescription = handler.getDescription.bind(handler);
    handler.getDescription = (o, m) =>
      getDescription(o, m).then((d) => Object.assign({}, d, { body: onlyLoopback(d.body) }));
    return handler;
  };
}

function register() {
  registerer.register({
    requestDelegate: {
      onAccept(r) {
        const m = r.message;
        emit("registered", Object.assign(response(m), {
          contact: m.getHeaders("contact"),
          expires: m.getHeader("expires") || null,
        }));
      },
      onReject(r) {
        emit("registration_failed", Object.assign(response(r.message), { cause: r.message.reasonPhrase || null }));
      },
    },
  }).catch((error) => emit("registration_failed", { code: null, reason: null, cause: String(error) }));
}

function answer(invitation) {
  invitation
    .accept({ sessionDescriptionHandlerOptions: { constraints: { audio: MICROPHONE, video: false } } })
    .then(() => emit("accepted", { call: idOf(invitation) }))
    .catch((error) => emit("error", { kind: "page", message: "accept: " + error }));
}

function incoming(invitation) {
  const id = nextCall;
  nextCall += 1;
  calls.set(id, invitation);
  states.set(id, { established: false });
  const request = invitation.request;
  invitation.delegate = {
    onAck: () => emit("confirmed", { call: id }),
    onInvite: (r) => emit("reinvite", { call: id, sdp: r.body || "" }),
  };
  let byUs = false;
  invitation.stateChange.addListener((state) => {
    if (state === SIP.SessionState.Established) {
      states.get(id).established = true;
      const handler = invitation.sessionDescriptionHandler;
      if (handler && handler.remoteMediaStream) play(id, handler.remoteMediaStream);
    } else if (state === SIP.SessionState.Terminating) {
      byUs = true;
    } else if (state === SIP.SessionState.Terminated) {
      const originator = byUs || invitation.amicoLocal ? "local" : "remote";
      if (states.get(id).established) emit("ended", { call: id, originator, cause: null });
      else emit("failed", { call: id, originator, cause: null, code: invitation.amicoCode || null });
    }
  });
  const from = request.from;
  emit("incoming", {
    call: id,
    call_id: request.callId,
    from_display: from.displayName || null,
    from_user: from.uri.user,
    from_uri: from.uri.toString(),
    to_uri: request.to.uri.toString(),
    request_uri: request.ruri.toString(),
    via: request.getHeader("via"),
    via_transport: request.getHeader("via") ? request.getHeader("via").split("/")[2].split(" ")[0] : null,
    sdp: request.body || "",
  });
  if (config.answer === "auto") answer(invitation);
  else if (config.answer === "reject") reject(invitation, config.rejectCode);
}

function reject(invitation, code) {
  invitation.amicoLocal = true;
  invitation.amicoCode = code;
  invitation.reject({ statusCode: code });
}

function reinvite(session, hold, sent, done) {
  const call = idOf(session);
  if (session.state !== SIP.SessionState.Established) throw new Error("call " + call + " is not established");
  session.invite({
    sessionDescriptionHandlerOptions: { hold },
    requestDelegate: { onAccept: () => emit(done, { call }) },
  }).catch((error) => emit("error", { kind: "page", message: sent + ": " + error }));
  emit(sent, { call });
}

window.amico = {
  start(settings) {
    config = settings;
    nextCall = config.firstCall;
    ua = new SIP.UserAgent({
      uri: SIP.UserAgent.makeURI(config.uri),
      authorizationUsername: config.user || SIP.UserAgent.makeURI(config.uri).user,
      authorizationPassword: config.password,
      displayName: config.displayName || undefined,
      transportOptions: { server: config.ws },
      instanceId: config.instanceId,
      instanceIdAlwaysAdded: true,
      userAgentString: "Amico test agent (SIP.js " + SIP.version + ")",
      logBuiltinEnabled: true,
      logLevel: "debug",
      sessionDescriptionHandlerFactory: descriptionHandlerFactory(),
      sessionDescriptionHandlerFactoryOptions: {
        peerConnectionConfiguration: { iceServers: [] },
        iceGatheringTimeout: 2000,
      },
      delegate: { onInvite: incoming },
    });
    ua.transport.stateChange.addListener((state) => {
      if (state === SIP.TransportState.Connecting) emit("connecting", { attempts: 1 });
      else if (state === SIP.TransportState.Connected) emit("connected", { ws: config.ws });
      else if (state === SIP.TransportState.Disconnected) {
        emit("disconnected", { error: !requested, code: null, reason: null, requested });
      }
    });
    registerer = new SIP.Registerer(ua, { expires: config.expires });
    registerer.stateChange.addListener((state) => {
      if (state === SIP.RegistererState.Unregistered) {
        emit("unregistered", { code: null, reason: null, cause: null });
      }
    });
    ua.start()
      .then(() => { if (config.register) register(); })
      .catch((error) => emit("websocket_error", { url: config.ws, error: String(error) }));
    return SIP.version;
  },
  register() { register(); },
  unregister() { registerer.unregister(); },
  drop() {
    requested = true;
    ua.transport.disconnect();
  },
  reconnect() {
    requested = false;
    ua.reconnect().then(() => register());
  },
  stop() {
    requested = true;
    registerer.unregister().finally(() => ua.stop());
  },
  answer(id) { answer(ringing(id, isRinging)); },
  reject(code, id) { reject(ringing(id, isRinging), code); },
  hangup(id) {
    const sessions = id === null ? [...calls.values()] : [byId(id)];
    for (const s of sessions) {
      if (s.state === SIP.SessionState.Established) {
        s.amicoLocal = true;
        s.bye();
      } else if (isRinging(s)) {
        reject(s, 480);
      }
    }
  },
  hold(id) { reinvite(byId(id), true, "hold_sent", "held"); },
  unhold(id) { reinvite(byId(id), false, "unhold_sent", "unheld"); },
  dtmf(tones, id) {
    const session = byId(id);
    const handler = session.sessionDescriptionHandler;
    if (!handler || !handler.sendDtmf(tones, { duration: 160, interToneGap: 100 })) {
      throw new Error("SIP.js cannot send RFC 4733 events on call " + idOf(session) + " now");
    }
    emit("dtmf_sent", { call: idOf(session), tones });
  },
  async stats(id) {
    const session = byId(id);
    const handler = session.sessionDescriptionHandler;
    const call = idOf(session);
    return Object.assign({ call, peak: peak(call) }, await mediaStats(handler && handler.peerConnection));
  },
  connected() { return ua !== null && ua.isConnected(); },
};
</script></head>
<body><h1>Amico test agent (SIP.js)</h1></body></html>
`;

const PAGE = library === "jssip" ? JSSIP_PAGE : SIPJS_PAGE;

// ---------------------------------------------------------------------------------------
// The HTTP server the page comes from.

const http = createServer((request, response) => {
  const path = new URL(request.url, "http://127.0.0.1").pathname;
  if (path === "/") {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    response.end(PAGE);
  } else if (path === "/jssip.js" && bundle) {
    response.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
    response.end(bundle);
  } else if (path.startsWith("/sip.js/") && library === "sipjs") {
    // A module of SIP.js, never a file outside its folder.
    const file = resolve(sipjsDir, "." + path.slice("/sip.js".length));
    let body = null;
    if (file.startsWith(sipjsDir + sep) && file.endsWith(".js")) {
      try {
        body = readFileSync(file);
      } catch {
        body = null;
      }
    }
    if (body) {
      response.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
      response.end(body);
    } else {
      response.writeHead(404, { "content-type": "text/plain" });
      response.end("not found\n");
    }
  } else {
    response.writeHead(404, { "content-type": "text/plain" });
    response.end("not found\n");
  }
});
await new Promise((ready) => http.listen(0, "127.0.0.1", ready));
const pageUrl = `http://127.0.0.1:${http.address().port}/`;

// ---------------------------------------------------------------------------------------
// The browser.

const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
];
if (audio) args.push(`--use-file-for-fake-audio-capture=${resolve(audio)}`);

let browser;
let page;
let closing = false;
let connected = false;
/** The version of the page's SIP library. */
let libraryVersion = null;
/** Incoming calls so far, in every page this process loaded. */
let callsSoFar = 0;

/** Start lines of SIP messages, for the `sip` events. */
function sipSummary(payload) {
  const text = String(payload);
  const line = text.split("\r\n", 1)[0];
  const header = (name, short) => {
    const match = text.match(new RegExp(`^(?:${name}|${short}):[ \\t]*(.*)$`, "im"));
    return match ? match[1].trim() : null;
  };
  return { line, cseq: header("CSeq", "CSeq"), call_id: header("Call-ID", "i") };
}

function watch(page) {
  // The library's debug output, without the browser's colour directives.
  const plain = (text) => text.replace(/%c/g, "").replace(/ ?color: (#[0-9A-Fa-f]{6}|inherit)/g, "");
  page.on("console", (message) => {
    const text = plain(message.text());
    // Not the UA's settings, one per line at each start.
    if (!text.startsWith("JsSIP:UA - ")) note(`[console.${message.type()}] ${text}`);
  });
  page.on("pageerror", (error) => {
    note(`[pageerror] ${error.message}`);
    emit({ event: "error", kind: "page", message: error.message });
  });
  page.on("websocket", (socket) => {
    note(`[websocket] opening ${socket.url()}`);
    socket.on("socketerror", (error) => {
      note(`[websocket] error ${socket.url()}: ${error}`);
      emit({ event: "websocket_error", url: socket.url(), error: String(error) });
    });
    socket.on("close", () => note(`[websocket] closed ${socket.url()}`));
    socket.on("framesent", (frame) => {
      note(`[websocket] sent:\n${frame.payload}`);
      emit({ event: "sip", direction: "sent", ...sipSummary(frame.payload) });
    });
    socket.on("framereceived", (frame) => {
      note(`[websocket] received:\n${frame.payload}`);
      emit({ event: "sip", direction: "received", ...sipSummary(frame.payload) });
    });
  });
}

async function load(again) {
  if (again) await page.reload({ waitUntil: "load", timeout: 15_000 });
  else await page.goto(pageUrl, { waitUntil: "load", timeout: 15_000 });
  libraryVersion = await page.evaluate((config) => window.amico.start(config), {
    ...config,
    firstCall: callsSoFar,
  });
}

try {
  // Playwright gives the browser a fresh user-data folder of its own, removed on close.
  browser = await chromium.launch({ executablePath, headless: true, args, timeout: 30_000 });
  page = await (await browser.newContext()).newPage();
  watch(page);
  await page.exposeFunction("amicoEvent", (value) => {
    if (value.event === "connected") connected = true;
    if (value.event === "disconnected") connected = false;
    if (value.event === "incoming") callsSoFar = Math.max(callsSoFar, value.call + 1);
    emit(value);
  });
  // A JsSIP UA is started in load(): its first events may come before `ready`.
  await load();
} catch (error) {
  emit({ event: "error", kind: "setup", message: String(error && error.stack ? error.stack : error) });
  await shutdown(1, null);
}

emit({
  event: "ready",
  browser: browser.version(),
  library,
  version: libraryVersion,
  package: packageVersion,
  jssip: library === "jssip" ? libraryVersion : null,
  page: pageUrl,
  ws: config.ws,
  uri: config.uri,
  instance_id: config.instanceId,
});

async function shutdown(code, reason) {
  if (closing) return;
  closing = true;
  try {
    await browser?.close();
  } catch (error) {
    note(`closing the browser: ${error}`);
  }
  http.close();
  if (reason) emit({ event: "done", reason });
  process.exit(code);
}

/** Waits until the page's UA says it is disconnected, at most `ms`. */
async function disconnectedWithin(ms) {
  const deadline = Date.now() + ms;
  while (connected && Date.now() < deadline) {
    await new Promise((wake) => setTimeout(wake, 20));
  }
}

const commands = {
  async quit() {
    await page.evaluate(() => window.amico.stop());
    // ua.stop() un-REGISTERs and closes its WebSocket when the answer comes, or after 2 s.
    await disconnectedWithin(5_000);
    await shutdown(0, "quit");
  },
  register: () => page.evaluate(() => window.amico.register()),
  unregister: () => page.evaluate(() => window.amico.unregister()),
  drop: () => page.evaluate(() => window.amico.drop()),
  reconnect: () => page.evaluate(() => window.amico.reconnect()),
  async reload() {
    // The old page's UA goes with it, without a word: no `disconnected` comes.
    connected = false;
    await load(true);
    emit({ event: "reloaded", page: pageUrl });
  },
  answer: ([id]) => page.evaluate((id) => window.amico.answer(id), id === undefined ? null : Number(id)),
  reject: ([code, id]) =>
    page.evaluate(
      ([code, id]) => window.amico.reject(code, id),
      [code === undefined ? 486 : Number(code), id === undefined ? null : Number(id)],
    ),
  hangup: ([id]) => page.evaluate((id) => window.amico.hangup(id), id === undefined ? null : Number(id)),
  dtmf: ([tones, id]) => {
    if (!tones || !/^[0-9A-D#*]+$/i.test(tones)) throw new Error("dtmf needs keys: 0-9, *, #, A-D");
    return page.evaluate(([tones, id]) => window.amico.dtmf(tones, id), [tones, id === undefined ? null : Number(id)]);
  },
  hold: ([id]) => page.evaluate((id) => window.amico.hold(id), id === undefined ? null : Number(id)),
  unhold: ([id]) => page.evaluate((id) => window.amico.unhold(id), id === undefined ? null : Number(id)),
  async stats([id]) {
    const stats = await page.evaluate((id) => window.amico.stats(id), id === undefined ? null : Number(id));
    emit({ event: "stats", ...stats });
  },
};

async function run(line) {
  const [name, ...rest] = line.trim().split(/\s+/);
  const command = commands[name];
  if (!command) {
    emit({ event: "error", kind: "command", message: `unknown command ${JSON.stringify(line.trim())}` });
    return;
  }
  try {
    await command(rest);
  } catch (error) {
    // The first line: the page's stack adds nothing.
    const message = String(error && error.message ? error.message : error).split("\n", 1)[0];
    emit({ event: "error", kind: "command", message: `${name}: ${message}` });
  }
}

// One command at a time, in order.
let queue = Promise.resolve();
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (line.trim() === "") return;
  queue = queue.then(() => run(line));
});
input.on("close", () => {
  queue.then(() => shutdown(0, "eof"));
});
