// Amico's agent desktop: a browser softphone (JsSIP over SIP over WebSocket) and the
// agent's ACD state, in Italian or English.
//
// How it works:
// - The agent types its API token (an `[[api.tokens]]` entry with scope = "agent").
//   POST /agent/session exchanges it for the agent's name, SIP user and password and the
//   pause reasons. The token is kept in sessionStorage, so a reload of the tab logs in
//   again by itself; closing the tab forgets it.
// - JsSIP registers over ws(s)://THIS_HOST/sip. Registering logs the agent in; the ACD
//   then rings this page like any phone. The microphone is asked for before registering:
//   an agent who cannot be heard must not be offered calls.
// - The agent's desk comes over the WebSocket /agent/events?token=: its ACD state and
//   since when, the call it rings or talks on (the caller as the trunk sent it, the
//   number dialled, the queue, how long the caller waited) and the wrap-up time left.
//   Ready, pause, log out and more wrap-up are POSTs to /api/agents/{name}/...
// - When the network drops, JsSIP opens its WebSocket again (1 s, then up to 8 s apart)
//   and registers again once it is open; the desk stream does the same. Meanwhile the
//   page says it is reconnecting. The server keeps the registration for
//   `[sip] websocket_grace` seconds, so a short drop loses nothing.
// - Keys: A answers, H hangs up (or refuses a ringing call), R makes the agent ready,
//   M mutes; not while typing in a field, nor with Ctrl, Alt or Meta.
//
// window.amicoDesktop is for tests and support: `snapshot()` says what the page shows,
// `dropConnections()` closes both WebSockets as a network drop would (JsSIP is not told
// it was asked), `audioStats()` reads the call's getStats().
"use strict";

(() => {
  const RECONNECT_MIN_MS = 1000;
  const RECONNECT_MAX_MS = 8000;
  const EXTEND_SECONDS = 30;
  const TOKEN_KEY = "amico-agent-token";
  const LANGUAGE_KEY = "amico-language";
  const DASH = "\u2013";

  // -------------------------------------------------------------------------------------
  // Words

  const TEXT = {
    en: {
      title: "agent desktop",
      login_title: "Log in",
      token_label: "Your agent token",
      token_hint:
        "The token your supervisor gave you (an API token for your agent). The page uses it " +
        "to register your softphone and to show your state.",
      login: "Log in",
      state_title: "Your state",
      calls_answered: "Calls answered",
      ready: "Ready",
      pause: "Pause",
      pause_reason: "Pause reason",
      logout: "Log out",
      call_title: "Call",
      no_call: "No call.",
      caller: "Caller",
      queue: "Queue",
      number_dialled: "Number dialled",
      waited: "Waited",
      told: "Was told",
      told_position: "position {position}",
      told_wait: "about {wait} wait",
      told_nothing: "nothing yet",
      talking_for: "Talking for",
      answer: "Answer",
      hangup: "Hang up",
      refuse: "Refuse",
      mute: "Mute",
      unmute: "Unmute",
      hold: "Hold",
      resume: "Resume",
      wrap_up_title: "Wrap-up",
      wrap_up_left: "Time left",
      extend: `+${EXTEND_SECONDS} s`,
      ready_now: "Ready now",
      shortcuts: "Keys: A answer · H hang up · R ready · M mute",
      "state.logged_out": "Logged out",
      "state.available": "Ready",
      "state.reserved": "Ringing",
      "state.on_call": "On a call",
      "state.wrap_up": "Wrap-up",
      "state.paused": "Paused",
      "reason.break": "Break",
      "reason.lunch": "Lunch",
      "reason.training": "Training",
      "reason.meeting": "Meeting",
      "reason.back_office": "Back office",
      "call.ringing": "Incoming call",
      "call.answering": "Connecting…",
      "call.talking": "Connected",
      "call.on_hold": "On hold",
      "call.ended": "Call ended",
      "connection.offline": "Not connected",
      "connection.connecting": "Connecting…",
      "connection.online": "Connected",
      "connection.reconnecting": "Connection lost: reconnecting…",
      for_time: "for {time}",
      error_token_missing: "Type your agent token.",
      error_token: "The server refused the token: {message}",
      error_server: "The server could not be reached ({detail}). Check the network and try again.",
      error_jssip:
        "The softphone library (JsSIP) is missing on the server: {detail} " +
        "Ask your administrator to run scripts/desktop-bundle.",
      error_no_media:
        "This browser gives this page no microphone: open the desktop over HTTPS " +
        "(or on localhost) in a recent Chrome, Edge or Firefox.",
      error_mic_refused:
        "The microphone was refused, so you cannot take calls. Allow it for this site " +
        "(the icon at the left of the address bar), then log in again.",
      error_mic_missing: "No microphone was found. Plug one in, then log in again.",
      error_mic: "The microphone cannot be used: {detail}",
      error_register: "Your softphone could not register: {detail}",
      error_action: "{action} failed: {message}",
      error_session_gone: "Your token is no longer valid: log in again.",
      reconnected: "Connection back.",
      logged_out_notice: "You are logged out.",
    },
    it: {
      title: "desktop operatore",
      login_title: "Accesso",
      token_label: "Il tuo token operatore",
      token_hint:
        "Il token che ti ha dato il supervisore (un token API del tuo operatore). La pagina lo " +
        "usa per registrare il tuo telefono e mostrare il tuo stato.",
      login: "Accedi",
      state_title: "Il tuo stato",
      calls_answered: "Chiamate risposte",
      ready: "Disponibile",
      pause: "Pausa",
      pause_reason: "Motivo della pausa",
      logout: "Esci",
      call_title: "Chiamata",
      no_call: "Nessuna chiamata.",
      caller: "Chiamante",
      queue: "Coda",
      number_dialled: "Numero chiamato",
      waited: "Attesa in coda",
      told: "Annunciato",
      told_position: "posizione {position}",
      told_wait: "attesa di circa {wait}",
      told_nothing: "ancora nulla",
      talking_for: "In conversazione da",
      answer: "Rispondi",
      hangup: "Riaggancia",
      refuse: "Rifiuta",
      mute: "Muto",
      unmute: "Riattiva audio",
      hold: "Metti in attesa",
      resume: "Riprendi",
      wrap_up_title: "Post-chiamata",
      wrap_up_left: "Tempo rimasto",
      extend: `+${EXTEND_SECONDS} s`,
      ready_now: "Disponibile ora",
      shortcuts: "Tasti: A rispondi · H riaggancia · R disponibile · M muto",
      "state.logged_out": "Disconnesso",
      "state.available": "Disponibile",
      "state.reserved": "Squilla",
      "state.on_call": "In chiamata",
      "state.wrap_up": "Post-chiamata",
      "state.paused": "In pausa",
      "reason.break": "Pausa breve",
      "reason.lunch": "Pranzo",
      "reason.training": "Formazione",
      "reason.meeting": "Riunione",
      "reason.back_office": "Back office",
      "call.ringing": "Chiamata in arrivo",
      "call.answering": "Connessione…",
      "call.talking": "In conversazione",
      "call.on_hold": "In attesa",
      "call.ended": "Chiamata terminata",
      "connection.offline": "Non connesso",
      "connection.connecting": "Connessione…",
      "connection.online": "Connesso",
      "connection.reconnecting": "Connessione persa: riconnessione in corso…",
      for_time: "da {time}",
      error_token_missing: "Scrivi il tuo token operatore.",
      error_token: "Il server ha rifiutato il token: {message}",
      error_server: "Il server non risponde ({detail}). Controlla la rete e riprova.",
      error_jssip:
        "Manca sul server la libreria del telefono (JsSIP): {detail} " +
        "Chiedi all'amministratore di eseguire scripts/desktop-bundle.",
      error_no_media:
        "Questo browser non dà il microfono a questa pagina: apri il desktop in HTTPS " +
        "(o su localhost) con un Chrome, Edge o Firefox recente.",
      error_mic_refused:
        "Il microfono è stato negato: non puoi ricevere chiamate. Consentilo per questo " +
        "sito (l'icona a sinistra dell'indirizzo), poi accedi di nuovo.",
      error_mic_missing: "Nessun microfono trovato. Collegane uno, poi accedi di nuovo.",
      error_mic: "Il microfono non si può usare: {detail}",
      error_register: "Il telefono non si è potuto registrare: {detail}",
      error_action: "{action} non riuscito: {message}",
      error_session_gone: "Il token non è più valido: accedi di nuovo.",
      reconnected: "Connessione ripristinata.",
      logged_out_notice: "Sei disconnesso.",
    },
  };

  function pickLanguage() {
    const saved = localStorage.getItem(LANGUAGE_KEY);
    if (saved && TEXT[saved]) return saved;
    for (const tag of navigator.languages || [navigator.language || "en"]) {
      const base = String(tag).toLowerCase().split("-")[0];
      if (TEXT[base]) return base;
    }
    return "en";
  }

  let language = pickLanguage();

  function t(key, vars = {}) {
    const text = TEXT[language][key] ?? TEXT.en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
  }

  // -------------------------------------------------------------------------------------
  // The page's parts

  const $ = (selector) => document.querySelector(selector);
  const field = (name) => document.querySelector(`[data-field="${name}"]`);
  const action = (name) => document.querySelector(`[data-action="${name}"]`);
  const loginForm = $("#login");
  const desk = $("#desk");
  const message = $("[data-message]");
  const connection = $("[data-connection]");
  const callPanel = $(".panel.call");
  const wrapUpPanel = $(".panel.wrap-up");
  const remoteAudio = $("#remote-audio");
  const baseTitle = document.title;

  /** Everything the page knows. */
  const my = {
    token: null,
    agent: null,
    sip: null,
    reasons: [],
    ua: null,
    /** `offline`, `connecting`, `registered`, `reconnecting`. */
    sipStatus: "offline",
    everRegistered: false,
    registerFailed: false,
    deskSocket: null,
    deskOpen: false,
    deskRetry: RECONNECT_MIN_MS,
    deskTimer: null,
    /** The last desk received and the page's clock then (ms), and when its agent part
     * was last replaced (an action's answer comes before the stream's next desk). */
    desk: null,
    deskAt: 0,
    agentAt: 0,
    /** The JsSIP session ringing or talking, and what the page shows of it. */
    session: null,
    callState: "none",
    remote: null,
    answeredAt: 0,
    stopping: false,
    busy: false,
  };

  function showMessage(text, kind = "error") {
    if (!text) {
      message.hidden = true;
      message.textContent = "";
      message.dataset.message = "";
      return;
    }
    message.hidden = false;
    message.textContent = text;
    message.dataset.message = kind;
  }

  // What the last position announcement told the caller: its place, and the wait it was
  // given (whole minutes, as the prompts say it).
  function toldText(told) {
    if (!told) return t("told_nothing");
    const parts = [t("told_position", { position: told.position })];
    if (Number.isFinite(told.estimated_wait)) {
      parts.push(t("told_wait", { wait: `${Math.max(1, Math.round(told.estimated_wait / 60))} min` }));
    }
    return parts.join(", ");
  }

  function clockTime(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
    const total = Math.max(0, Math.floor(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function reasonLabel(code) {
    const key = `reason.${code}`;
    return TEXT[language][key] || TEXT.en[key] || code;
  }

  /** `"Rossi" <sip:+39055123@host>;x=y` → `Rossi (+39055123)`. */
  function identity(from) {
    if (!from) return null;
    const match = /^\s*(?:"((?:[^"\\]|\\.)*)"|([^<]*?))\s*<([^>]*)>/.exec(from);
    const uri = match ? match[3] : from.split(";")[0];
    const display = match ? (match[1] ?? match[2] ?? "").replace(/\\(.)/g, "$1").trim() : "";
    const user = (/^\s*sips?:([^@;>]+)@/i.exec(uri) || [])[1];
    let number = user ? user : uri.trim();
    try {
      number = decodeURIComponent(number);
    } catch (_) {
      // Left as sent.
    }
    return display ? `${display} (${number})` : number;
  }

  // -------------------------------------------------------------------------------------
  // Language

  function applyLanguage() {
    document.documentElement.lang = language;
    for (const element of document.querySelectorAll("[data-i18n]")) {
      element.textContent = t(element.dataset.i18n);
    }
    for (const button of document.querySelectorAll("[data-language]")) {
      button.setAttribute("aria-pressed", String(button.dataset.language === language));
    }
    fillReasons();
    render();
  }

  for (const button of document.querySelectorAll("[data-language]")) {
    button.addEventListener("click", () => {
      language = button.dataset.language;
      localStorage.setItem(LANGUAGE_KEY, language);
      applyLanguage();
    });
  }

  function fillReasons() {
    const select = field("pause-reasons");
    const chosen = select.value;
    select.replaceChildren(
      ...my.reasons.map((code) => {
        const option = document.createElement("option");
        option.value = code;
        option.textContent = reasonLabel(code);
        return option;
      }),
    );
    if (my.reasons.includes(chosen)) select.value = chosen;
  }

  // -------------------------------------------------------------------------------------
  // The API

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: {
          Authorization: `Bearer ${my.token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (error) {
      throw { status: 0, message: t("error_server", { detail: error.message }) };
    }
    let json = null;
    try {
      json = await response.json();
    } catch (_) {
      // Not JSON: the status says enough.
    }
    if (!response.ok) {
      throw {
        status: response.status,
        message: json?.error?.message || `HTTP ${response.status}`,
      };
    }
    return json;
  }

  /** An agent action; its answer is the agent's new state, shown at once. */
  async function act(name, label, body) {
    try {
      const agent = await api("POST", `/api/agents/${encodeURIComponent(my.agent)}/${name}`, body);
      if (my.desk && agent) {
        // Shown at once; the desk stream follows with the rest (the wrap-up left).
        my.desk = { ...my.desk, agent };
        my.agentAt = performance.now();
      }
      showMessage(null);
      render();
    } catch (error) {
      showMessage(t("error_action", { action: label, message: error.message }));
    }
  }

  // -------------------------------------------------------------------------------------
  // Logging in and out

  async function logIn(token) {
    if (my.busy) return;
    my.busy = true;
    action("login").disabled = true;
    try {
      await start(token);
    } finally {
      my.busy = false;
      action("login").disabled = false;
    }
  }

  async function start(token) {
    if (!token) {
      showMessage(t("error_token_missing"));
      return;
    }
    my.token = token;
    let session;
    try {
      session = await api("POST", "/agent/session");
    } catch (error) {
      if (error.status === 401 || error.status === 403 || error.status === 404) {
        sessionStorage.removeItem(TOKEN_KEY);
        showMessage(t("error_token", { message: error.message }));
      } else {
        showMessage(error.message);
      }
      showLogin();
      return;
    }
    if (typeof window.JsSIP === "undefined") {
      let detail = "";
      try {
        const response = await fetch("/agent/jssip.js", { cache: "no-store" });
        detail = `HTTP ${response.status}: ${(await response.text()).trim()}`;
      } catch (error) {
        detail = error.message;
      }
      showMessage(t("error_jssip", { detail }));
      showLogin();
      return;
    }
    if (!(await microphone())) {
      showLogin();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    my.agent = session.agent;
    my.sip = session.sip;
    my.reasons = session.pause_reasons || [];
    my.stopping = false;
    field("agent-name").textContent = my.agent;
    fillReasons();
    showMessage(null);
    loginForm.hidden = true;
    desk.hidden = false;
    openDesk();
    startPhone();
    render();
  }

  /** Asks for the microphone once, to say clearly why calls cannot be taken. */
  async function microphone() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showMessage(t("error_no_media"));
      return false;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
      for (const track of stream.getTracks()) track.stop();
      return true;
    } catch (error) {
      if (error.name === "NotAllowedError" || error.name === "SecurityError") {
        showMessage(t("error_mic_refused"));
      } else if (error.name === "NotFoundError") {
        showMessage(t("error_mic_missing"));
      } else {
        showMessage(t("error_mic", { detail: `${error.name}: ${error.message}` }));
      }
      return false;
    }
  }

  function showLogin() {
    desk.hidden = true;
    loginForm.hidden = false;
    field("token").focus();
  }

  async function logOut() {
    my.stopping = true;
    // The ACD first (a registration that stays would log the agent in again only when it
    // is renewed), then the phone: its un-REGISTER logs out too.
    try {
      await api("POST", `/api/agents/${encodeURIComponent(my.agent)}/logout`);
    } catch (_) {
      // Already logged out, or the network is down: the un-REGISTER or the grace does it.
    }
    stopEverything();
    sessionStorage.removeItem(TOKEN_KEY);
    showMessage(t("logged_out_notice"), "info");
    showLogin();
  }

  function stopEverything() {
    my.stopping = true;
    stopRinging();
    if (my.session && !my.session.isEnded()) my.session.terminate();
    my.session = null;
    if (my.ua) my.ua.stop();
    my.ua = null;
    clearTimeout(my.deskTimer);
    if (my.deskSocket) my.deskSocket.close();
    my.deskSocket = null;
    my.deskOpen = false;
    my.desk = null;
    my.sipStatus = "offline";
    my.everRegistered = false;
    render();
  }

  // -------------------------------------------------------------------------------------
  // The phone

  function startPhone() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new JsSIP.WebSocketInterface(`${scheme}://${window.location.host}/sip`);
    const host = window.location.hostname.includes(":")
      ? `[${window.location.hostname}]`
      : window.location.hostname;
    const ua = new JsSIP.UA({
      sockets: [socket],
      uri: `sip:${my.sip.user}@${host}`,
      password: my.sip.password,
      display_name: my.agent,
      register: true,
      session_timers: false,
      connection_recovery_min_interval: RECONNECT_MIN_MS / 1000,
      connection_recovery_max_interval: RECONNECT_MAX_MS / 1000,
    });
    my.ua = ua;
    my.sipStatus = "connecting";
    ua.on("connecting", () => {
      if (my.ua !== ua) return;
      my.sipStatus = my.everRegistered ? "reconnecting" : "connecting";
      render();
    });
    ua.on("disconnected", () => {
      if (my.ua !== ua || my.stopping) return;
      my.sipStatus = my.everRegistered ? "reconnecting" : "connecting";
      render();
    });
    ua.on("registered", () => {
      if (my.ua !== ua) return;
      const back = my.sipStatus === "reconnecting";
      my.sipStatus = "registered";
      my.everRegistered = true;
      if (back) showMessage(t("reconnected"), "info");
      else if (my.registerFailed) showMessage(null);
      my.registerFailed = false;
      render();
    });
    ua.on("unregistered", () => {
      if (my.ua !== ua || my.stopping) return;
      my.sipStatus = "connecting";
      render();
    });
    ua.on("registrationFailed", (event) => {
      if (my.ua !== ua) return;
      const code = event.response ? ` (${event.response.status_code})` : "";
      my.registerFailed = true;
      showMessage(t("error_register", { detail: `${event.cause}${code}` }));
      if (event.cause === JsSIP.C.causes.AUTHENTICATION_ERROR) {
        // Wrong credentials do not get better by trying again.
        stopEverything();
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin();
      }
      render();
    });
    ua.on("newRTCSession", ({ originator, session, request }) => {
      if (originator !== "remote") return;
      if (my.session && !my.session.isEnded()) {
        // One call at a time: the ACD never offers a second, but a stray INVITE could.
        session.terminate({ status_code: 486 });
        return;
      }
      incoming(session, request);
    });
    ua.start();
  }

  function incoming(session, request) {
    my.session = session;
    my.callState = "ringing";
    my.remote = identity(request.getHeader("From"));
    my.answeredAt = 0;
    session.on("peerconnection", ({ peerconnection }) => {
      peerconnection.addEventListener("track", (event) => {
        if (event.streams && event.streams[0]) remoteAudio.srcObject = event.streams[0];
      });
    });
    session.on("accepted", () => {
      if (my.session !== session) return;
      stopRinging();
      my.callState = "talking";
      my.answeredAt = performance.now();
      attachRemoteAudio(session);
      render();
    });
    session.on("confirmed", () => {
      if (my.session !== session) return;
      attachRemoteAudio(session);
      render();
    });
    session.on("hold", () => render());
    session.on("unhold", () => render());
    session.on("muted", () => render());
    session.on("unmuted", () => render());
    const ended = () => {
      if (my.session !== session) return;
      stopRinging();
      my.session = null;
      my.callState = "none";
      my.remote = null;
      remoteAudio.srcObject = null;
      render();
    };
    session.on("ended", ended);
    session.on("failed", ended);
    startRinging();
    render();
  }

  function attachRemoteAudio(session) {
    const pc = session.connection;
    if (!pc) return;
    const tracks = pc
      .getReceivers()
      .map((receiver) => receiver.track)
      .filter((track) => track && track.kind === "audio");
    if (tracks.length > 0 && !remoteAudio.srcObject) {
      remoteAudio.srcObject = new MediaStream(tracks);
    }
    remoteAudio.play().catch(() => {});
  }

  function answer() {
    const session = my.session;
    if (!session || my.callState !== "ringing") return;
    my.callState = "answering";
    stopRinging();
    try {
      session.answer({
        mediaConstraints: { audio: true, video: false },
        pcConfig: { iceServers: [] },
      });
    } catch (error) {
      showMessage(t("error_action", { action: t("answer"), message: error.message }));
      my.callState = "ringing";
    }
    render();
  }

  function hangUp() {
    const session = my.session;
    if (!session || session.isEnded()) return;
    if (my.callState === "ringing") session.terminate({ status_code: 486 });
    else session.terminate();
  }

  function toggleMute() {
    const session = my.session;
    if (!session || !session.isEstablished()) return;
    if (session.isMuted().audio) session.unmute({ audio: true });
    else session.mute({ audio: true });
    render();
  }

  function toggleHold() {
    const session = my.session;
    if (!session || !session.isEstablished()) return;
    if (session.isOnHold().local) session.unhold();
    else session.hold();
    render();
  }

  // A ring the agent hears: two tones, one second in three, while a call rings.
  let ringer = null;
  function startRinging() {
    stopRinging();
    try {
      const AudioContext = window.AudioContext || window.webkitAudioContext;
      const context = new AudioContext();
      const gain = context.createGain();
      gain.gain.value = 0;
      gain.connect(context.destination);
      for (const frequency of [440, 480]) {
        const oscillator = context.createOscillator();
        oscillator.frequency.value = frequency;
        oscillator.connect(gain);
        oscillator.start();
      }
      let on = false;
      const timer = setInterval(() => {
        on = !on;
        gain.gain.value = on ? 0.08 : 0;
      }, 1000);
      ringer = { context, timer };
    } catch (_) {
      ringer = null;
    }
  }

  function stopRinging() {
    if (!ringer) return;
    clearInterval(ringer.timer);
    ringer.context.close().catch(() => {});
    ringer = null;
  }

  // -------------------------------------------------------------------------------------
  // The desk stream

  function openDesk() {
    if (my.stopping) return;
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${window.location.host}/agent/events?token=${encodeURIComponent(my.token)}`;
    const socket = new WebSocket(url);
    my.deskSocket = socket;
    socket.addEventListener("open", () => {
      if (my.deskSocket !== socket) return;
      my.deskOpen = true;
      my.deskRetry = RECONNECT_MIN_MS;
      render();
    });
    socket.addEventListener("message", (event) => {
      if (my.deskSocket !== socket) return;
      try {
        my.desk = JSON.parse(event.data);
        my.deskAt = performance.now();
        my.agentAt = my.deskAt;
      } catch (_) {
        return;
      }
      render();
    });
    socket.addEventListener("close", (event) => {
      if (my.deskSocket !== socket) return;
      my.deskOpen = false;
      my.deskSocket = null;
      if (my.stopping) return;
      if (event.code === 1008) {
        stopEverything();
        sessionStorage.removeItem(TOKEN_KEY);
        showMessage(t("error_session_gone"));
        showLogin();
        return;
      }
      render();
      my.deskTimer = setTimeout(reopenDesk, my.deskRetry);
      my.deskRetry = Math.min(my.deskRetry * 2, RECONNECT_MAX_MS);
    });
  }

  /** Opens the desk stream again once the server is back and still takes the token (a
   * WebSocket refused with 401 only says it closed). */
  async function reopenDesk() {
    if (my.stopping) return;
    try {
      await api("POST", "/agent/session");
    } catch (error) {
      if (my.stopping) return;
      if (error.status === 401 || error.status === 403 || error.status === 404) {
        stopEverything();
        sessionStorage.removeItem(TOKEN_KEY);
        showMessage(t("error_session_gone"));
        showLogin();
        return;
      }
      my.deskTimer = setTimeout(reopenDesk, my.deskRetry);
      my.deskRetry = Math.min(my.deskRetry * 2, RECONNECT_MAX_MS);
      return;
    }
    openDesk();
  }

  // -------------------------------------------------------------------------------------
  // Drawing

  function connectionState() {
    if (!my.ua && !my.deskSocket) return "offline";
    if (my.sipStatus === "registered" && my.deskOpen) return "online";
    if (my.everRegistered) return "reconnecting";
    return "connecting";
  }

  function render() {
    const link = connectionState();
    connection.dataset.connection = link;
    field("connection-text").textContent = t(`connection.${link}`);

    const agent = my.desk?.agent;
    const state = agent?.state ?? "";
    const badge = field("acd-state");
    badge.dataset.state = state;
    badge.textContent = state ? t(`state.${state}`) : DASH;
    field("pause-reason").textContent =
      state === "paused" && agent.reason ? reasonLabel(agent.reason) : "";
    field("pause-reason").dataset.reason = state === "paused" ? agent.reason || "" : "";
    field("calls-answered").textContent = agent ? String(agent.calls_answered) : "0";
    tick();

    action("ready").disabled = !agent || state === "available" || state === "on_call" || state === "reserved";
    action("pause").disabled = !agent || my.reasons.length === 0 || state === "on_call" || state === "reserved";
    action("logout").disabled = !agent;

    // The call: JsSIP says what rings here; the desk adds the queue and the wait.
    const deskCall = my.desk?.call ?? null;
    const session = my.session;
    let callState = my.callState;
    if (session && callState === "talking" && session.isOnHold().local) callState = "on_hold";
    callPanel.dataset.call = session ? callState : "none";
    field("call-state").textContent = session ? t(`call.${callState}`) : "";
    field("caller").textContent = my.remote || identity(deskCall?.caller) || DASH;
    field("queue").textContent = deskCall?.queue || DASH;
    field("did").textContent = deskCall?.did || DASH;
    field("waited").textContent =
      deskCall && Number.isFinite(deskCall.waited) ? clockTime(deskCall.waited) : DASH;
    field("told").textContent = deskCall ? toldText(deskCall.told) : DASH;
    action("answer").disabled = !(session && my.callState === "ringing");
    action("hangup").disabled = !session;
    action("hangup").querySelector("[data-i18n]").textContent =
      my.callState === "ringing" ? t("refuse") : t("hangup");
    const established = !!(session && session.isEstablished());
    const muted = established && session.isMuted().audio;
    const held = established && session.isOnHold().local;
    action("mute").disabled = !established;
    action("mute").setAttribute("aria-pressed", String(muted));
    action("mute").querySelector("[data-i18n]").textContent = muted ? t("unmute") : t("mute");
    action("hold").disabled = !established;
    action("hold").setAttribute("aria-pressed", String(held));
    action("hold").textContent = held ? t("resume") : t("hold");
    document.title = session && my.callState === "ringing" ? `\u260e ${my.remote || ""}` : baseTitle;

    wrapUpPanel.hidden = state !== "wrap_up";
  }

  /** What runs on by itself: the time in the state, the talk time, the wrap-up left. */
  function tick() {
    const agent = my.desk?.agent;
    const now = performance.now();
    const elapsed = (now - my.deskAt) / 1000;
    field("state-duration").textContent = agent
      ? t("for_time", { time: clockTime(agent.seconds_in_state + (now - my.agentAt) / 1000) })
      : "";
    field("talk-time").textContent =
      my.answeredAt && my.session ? clockTime((performance.now() - my.answeredAt) / 1000) : DASH;
    const remaining = my.desk?.wrap_up_remaining;
    field("wrap-up").textContent =
      agent?.state === "wrap_up" && Number.isFinite(remaining)
        ? String(Math.max(0, Math.ceil(remaining - elapsed)))
        : "0";
  }
  setInterval(tick, 1000);

  // -------------------------------------------------------------------------------------
  // What the agent does

  function ready() {
    const state = my.desk?.agent?.state;
    if (!my.agent || state === "available" || state === "on_call" || state === "reserved") return;
    if (state === "logged_out") act("login", t("ready"));
    else act("ready", t("ready"));
  }

  loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    logIn(field("token").value.trim());
  });
  action("ready").addEventListener("click", ready);
  action("ready-now").addEventListener("click", ready);
  action("pause").addEventListener("click", () =>
    act("pause", t("pause"), { reason: field("pause-reasons").value }),
  );
  action("logout").addEventListener("click", logOut);
  action("answer").addEventListener("click", answer);
  action("hangup").addEventListener("click", hangUp);
  action("mute").addEventListener("click", toggleMute);
  action("hold").addEventListener("click", toggleHold);
  action("extend").addEventListener("click", () =>
    act("wrap-up", t("extend"), { extend: EXTEND_SECONDS }),
  );

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey || event.repeat) return;
    if (event.target.closest("input, select, textarea, [contenteditable]")) return;
    if (desk.hidden) return;
    const key = event.key.toLowerCase();
    const command = { a: answer, h: hangUp, r: ready, m: toggleMute }[key];
    if (!command) return;
    event.preventDefault();
    command();
  });

  window.addEventListener("beforeunload", () => {
    // A reload keeps the registration for the grace period; a call in progress ends.
    if (my.session && !my.session.isEnded()) my.session.terminate();
  });

  // -------------------------------------------------------------------------------------
  // For tests and support

  window.amicoDesktop = {
    snapshot() {
      return {
        language,
        connection: connectionState(),
        sip: my.sipStatus,
        desk_open: my.deskOpen,
        desk: my.desk,
        call: my.session ? { state: my.callState, remote: my.remote } : null,
        message: message.hidden ? null : message.textContent,
      };
    },
    /** Closes both WebSockets under the libraries' feet, as a network drop would. */
    dropConnections() {
      const ws = my.ua?.transport?.socket?._ws;
      if (ws) ws.close();
      if (my.deskSocket) my.deskSocket.close();
      return !!ws;
    },
    /** The call's audio as getStats() sees it. */
    async audioStats() {
      const pc = my.session?.connection;
      if (!pc) return null;
      const out = { inbound: null, outbound: null };
      (await pc.getStats()).forEach((report) => {
        if (report.kind !== "audio") return;
        if (report.type === "inbound-rtp") {
          out.inbound = {
            packets: report.packetsReceived,
            energy: report.totalAudioEnergy ?? null,
          };
        }
        if (report.type === "outbound-rtp") out.outbound = { packets: report.packetsSent };
      });
      return out;
    },
  };

  applyLanguage();
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    field("token").value = saved;
    logIn(saved);
  } else {
    showLogin();
  }
})();
