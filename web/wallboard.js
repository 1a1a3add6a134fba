// Amico's live wallboard: one card per queue, fed by the HTTP API and kept live by the
// queue-log event stream.
//
// How it stays current:
// - The token comes from the page's own URL (/wallboard?token=...). Every API request
//   carries it as `Authorization: Bearer`, the WebSocket as `?token=` (a browser cannot
//   set headers on a WebSocket).
// - GET /api/queues lists the queues; GET /api/queues/{name} gives each one's callers
//   and figures; GET /api/agents the agents.
// - The WebSocket /api/events sends one JSON record per committed queue-log event. Each
//   record makes the page fetch again the queue it names (every queue when it names
//   none) and the agents, at most once per REFRESH_GAP_MS per queue, with one trailing
//   fetch for whatever arrived during the last one. The server publishes its live
//   snapshot up to 100 ms after a record is committed (PUBLISH_EVERY in src/runner.rs),
//   so the page fetches once more SETTLE_MS after the last record of a burst.
// - When the socket drops, the page reconnects with ?after=LAST_SEQ (nothing missed) and
//   fetches everything again once it is open; meanwhile it polls.
// - Between updates, waits tick every second from the time of the last answer.
// - A missing token, or one the server refuses (401/403), stops everything with a
//   message that says what to do.
"use strict";

(() => {
  const REFRESH_GAP_MS = 250;
  const SETTLE_MS = 600;
  const POLL_WHILE_OFFLINE_MS = 5000;
  const RECONNECT_MIN_MS = 1000;
  const RECONNECT_MAX_MS = 15000;
  const ABANDON_TARGET = 0.03;
  // The abandonment chart's scale: 0 to 10 %, so that the 3 % target sits at 30 %.
  const ABANDON_SCALE = 0.1;
  const CALLER_ROWS = 12;
  const DASH = "\u2013";
  const NBSP = "\u00a0";

  const token = new URLSearchParams(window.location.search).get("token");
  const board = document.getElementById("queues");
  const template = document.getElementById("queue-card");
  const agentsPanel = document.querySelector(".agents-panel");
  const agentsList = document.getElementById("agents");
  const message = document.querySelector("[data-message]");
  const connection = document.querySelector("[data-connection]");
  const connectionText = document.querySelector('[data-field="connection-text"]');
  const clock = document.querySelector('[data-field="clock"]');

  /** Each queue's card and the figures it was last drawn from, by queue name. */
  const cards = new Map();
  /** The agents as last fetched, with the local time of the fetch. */
  let agents = { list: [], fetchedAt: 0 };
  /** The last record's `seq`, to resume the stream after it; 0 before any. */
  let lastSeq = 0;
  let socket = null;
  let reconnectDelay = RECONNECT_MIN_MS;
  let reconnectTimer = null;
  let pollTimer = null;
  let stopped = false;

  // -------------------------------------------------------------------------------------
  // Formatting

  function percent(share) {
    if (share === null || share === undefined || !Number.isFinite(share)) return DASH;
    return (share * 100).toFixed(1) + NBSP + "%";
  }

  function clockTime(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
    const total = Math.max(0, Math.floor(seconds));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function shortSeconds(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
    if (seconds < 10) return seconds.toFixed(1) + NBSP + "s";
    if (seconds < 60) return Math.round(seconds) + NBSP + "s";
    return clockTime(seconds);
  }

  function count(n) {
    return n === null || n === undefined ? DASH : String(n);
  }

  // -------------------------------------------------------------------------------------
  // Status and messages

  function setConnection(state, text) {
    connection.dataset.connection = state;
    connectionText.textContent = text;
  }

  function showMessage(kind, text) {
    message.dataset.message = kind;
    message.textContent = text;
    message.hidden = false;
  }

  function clearMessage(kind) {
    if (message.dataset.message === kind) {
      message.hidden = true;
      message.dataset.message = "";
      message.textContent = "";
    }
  }

  /** The token is missing or refused: nothing more can be done until the URL changes. */
  function refuse(status, detail) {
    stopped = true;
    if (socket) socket.close();
    clearTimeout(reconnectTimer);
    clearInterval(pollTimer);
    setConnection("refused", "Refused");
    const why =
      status === 403
        ? "The token was refused (403 Forbidden): the wallboard needs a supervisor token."
        : "The token was refused (401 Unauthorized): the server does not know it.";
    // What is on the board can no longer be kept current: take it down.
    for (const name of [...cards.keys()]) dropCard(name);
    agentsPanel.hidden = true;
    const said = detail ? ` The server said: ${detail.replace(/[.!]?$/, ".")}` : "";
    showMessage(
      "refused",
      `${why}${said} ` +
        "Open /wallboard?token=TOKEN with a supervisor token from the [[api.tokens]] section of the configuration.",
    );
  }

  /** An HTTP error from the API, with its status and the server's message. */
  class ApiFailure extends Error {
    constructor(status, detail) {
      super(`HTTP ${status}${detail ? ": " + detail : ""}`);
      this.status = status;
      this.detail = detail;
    }
  }

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
    if (!response.ok) {
      let detail = "";
      try {
        const body = await response.json();
        detail = body && body.error ? body.error.message : "";
      } catch (_) {
        // Not JSON: the status says enough.
      }
      throw new ApiFailure(response.status, detail);
    }
    return response.json();
  }

  /** Refused tokens stop the page; anything else is shown and retried by the next update. */
  function failed(error) {
    if (stopped) return;
    if (error instanceof ApiFailure && (error.status === 401 || error.status === 403)) {
      refuse(error.status, error.detail);
      return;
    }
    console.warn("wallboard: update failed:", error.message || error);
    showMessage("error", `Could not update: ${error.message || error}. Retrying.`);
  }

  // -------------------------------------------------------------------------------------
  // Cards

  function field(card, name) {
    return card.element.querySelector(`[data-field="${name}"]`);
  }

  function setText(card, name, text) {
    const element = field(card, name);
    if (element && element.textContent !== text) element.textContent = text;
  }

  function cardFor(name) {
    let card = cards.get(name);
    if (card) return card;
    const element = template.content.firstElementChild.cloneNode(true);
    element.dataset.queue = name;
    element.setAttribute("aria-label", `Queue ${name}`);
    element.querySelector('[data-field="name"]').textContent = name;
    card = { element, view: null, fetchedAt: 0, refresh: null, touch: null };
    card.refresh = debounced(() => refreshQueue(name));
    card.touch = settling(card.refresh);
    cards.set(name, card);
    // Keep the cards in the server's order by name: insert before the first larger one.
    const after = [...cards.keys()].sort().find((other) => other > name);
    board.insertBefore(element, after ? cards.get(after).element : null);
    return card;
  }

  function dropCard(name) {
    const card = cards.get(name);
    if (!card) return;
    card.element.remove();
    card.touch.cancel();
    cards.delete(name);
  }

  /** Draws a queue from a QueueBrief or a QueueView (which has `callers` too). */
  function draw(card, view) {
    card.view = view;
    card.fetchedAt = performance.now();
    const today = view.today;

    setText(card, "waiting", count(view.waiting));
    setText(card, "ringing", count(view.ringing));
    tickQueue(card);

    // Service level: a half-circle gauge.
    setText(card, "service-level", percent(today.service_level));
    setText(card, "answered-within-sl", count(today.answered_within_sl));
    setText(card, "answered", count(today.answered));
    const gauge = card.element.querySelector(".gauge-fill");
    const level = today.service_level === null ? 0 : Math.min(1, Math.max(0, today.service_level));
    gauge.setAttribute("stroke-dasharray", `${(level * 100).toFixed(2)} 100`);

    // Abandonment against the 3 % target.
    const rate = today.abandon_rate;
    const late = today.abandon_after_threshold_rate;
    setText(card, "abandon-rate", percent(rate));
    setText(card, "abandon-after-threshold-rate", percent(late));
    setText(card, "abandoned", count(today.abandoned));
    setText(card, "abandoned-after-threshold", count(today.abandoned_after_threshold));
    setText(card, "offered", count(today.offered));
    const overAll = rate !== null && rate > ABANDON_TARGET;
    const overLate = late !== null && late > ABANDON_TARGET;
    card.element.querySelector(".abandon").dataset.over = String(overAll || overLate);
    field(card, "abandon-rate").classList.toggle("over", overAll);
    field(card, "abandon-after-threshold-rate").classList.toggle("over", overLate);
    const status = overAll
      ? overLate
        ? "Over the 3 % target, after the threshold too"
        : "Over the 3 % target"
      : overLate
        ? "Over the 3 % target after the threshold"
        : rate === null
          ? "No call has ended yet"
          : "Within the 3 % target";
    setText(card, "abandon-status", status.replaceAll(" %", NBSP + "%"));
    const barWidth = (share) =>
      share === null ? 0 : (Math.min(share, ABANDON_SCALE) / ABANDON_SCALE) * 300;
    const allBar = card.element.querySelector(".abandon-all");
    const lateBar = card.element.querySelector(".abandon-late");
    allBar.setAttribute("width", barWidth(rate).toFixed(1));
    lateBar.setAttribute("width", barWidth(late).toFixed(1));
    allBar.classList.toggle("over", overAll);
    lateBar.classList.toggle("over", overLate);

    // Agents by state.
    const a = view.agents;
    for (const [name, value] of [
      ["agents-available", a.available],
      ["agents-reserved", a.reserved],
      ["agents-on-call", a.on_call],
      ["agents-wrap-up", a.wrap_up],
      ["agents-paused", a.paused],
      ["agents-logged-in", a.logged_in],
    ]) {
      setText(card, name, count(value));
      field(card, name).classList.toggle("zero", value === 0);
    }

    // Wait percentiles as bars, scaled to the largest (at least 10 s).
    const wait = today.wait;
    setText(card, "wait-count", count(wait.count));
    const top = Math.max(10, wait.p50, wait.p90, wait.p95, wait.p99);
    for (const p of ["p50", "p90", "p95", "p99"]) {
      const group = card.element.querySelector(`[data-bar="${p}"]`);
      const rect = group.querySelector("rect");
      const label = group.querySelector(".bar-value");
      const value = wait.count > 0 ? wait[p] : null;
      const height = value === null ? 0 : Math.max(1, (value / top) * 96);
      rect.setAttribute("y", (120 - height).toFixed(1));
      rect.setAttribute("height", height.toFixed(1));
      label.setAttribute("y", (114 - height).toFixed(1));
      setText(card, `wait-${p}`, shortSeconds(value));
    }

    // The survey: shares of the votes cast, and the counts.
    const survey = today.survey;
    for (const vote of ["satisfied", "sufficient", "unsatisfied"]) {
      const share = survey[`${vote}_share`];
      setText(card, `survey-${vote}`, percent(share));
      setText(card, `survey-${vote}-count`, count(survey[vote]));
      const segment = card.element.querySelector(`.survey-bar .${vote}`);
      segment.style.width = share === null ? "0" : `${(share * 100).toFixed(2)}%`;
    }
    setText(card, "survey-no-vote", count(survey.no_vote));

    if (Array.isArray(view.callers)) drawCallers(card, view.callers);
  }

  function drawCallers(card, callers) {
    const body = field(card, "callers");
    const rows = callers.slice(0, CALLER_ROWS).map((caller) => {
      const row = document.createElement("tr");
      row.dataset.call = String(caller.call);
      const cells = [
        caller.position === null
          ? `ringing ${caller.ringing || "an agent"}`
          : String(caller.position),
        clockTime(caller.waited),
        caller.estimated_wait === null ? DASH : clockTime(caller.estimated_wait),
        caller.caller || DASH,
      ];
      const names = ["position", "waited", "estimated-wait", "caller"];
      cells.forEach((text, i) => {
        const cell = document.createElement("td");
        cell.dataset.field = names[i];
        cell.textContent = text;
        row.appendChild(cell);
      });
      return row;
    });
    if (callers.length > CALLER_ROWS) {
      const row = document.createElement("tr");
      const cell = document.createElement("td");
      cell.colSpan = 4;
      cell.textContent = `and ${callers.length - CALLER_ROWS} more`;
      row.appendChild(cell);
      rows.push(row);
    }
    body.replaceChildren(...rows);
    field(card, "callers-empty").hidden = callers.length > 0;
  }

  /** Advances the card's waits by the time since its figures came. */
  function tickQueue(card) {
    const view = card.view;
    if (!view) return;
    const elapsed = (performance.now() - card.fetchedAt) / 1000;
    const someone = view.waiting + view.ringing > 0;
    setText(card, "longest-wait", clockTime(someone ? view.longest_wait + elapsed : 0));
    if (!Array.isArray(view.callers)) return;
    const rows = field(card, "callers").querySelectorAll("tr[data-call]");
    rows.forEach((row, i) => {
      const caller = view.callers[i];
      if (!caller) return;
      const cell = row.querySelector('[data-field="waited"]');
      const text = clockTime(caller.waited + elapsed);
      if (cell.textContent !== text) cell.textContent = text;
    });
  }

  // -------------------------------------------------------------------------------------
  // Agents

  function drawAgents(list) {
    agents = { list, fetchedAt: performance.now() };
    const items = list.map((agent) => {
      const item = document.createElement("li");
      item.className = `agent state-${agent.state}`;
      item.dataset.agent = agent.name;
      item.dataset.state = agent.state;
      const name = document.createElement("span");
      name.className = "agent-name";
      name.textContent = agent.name;
      const state = document.createElement("span");
      state.className = "agent-state";
      state.dataset.field = "state";
      state.textContent = agentState(agent);
      const since = document.createElement("span");
      since.className = "agent-since";
      since.dataset.field = "in-state";
      since.textContent = clockTime(agent.seconds_in_state);
      item.append(name, state, since);
      return item;
    });
    agentsList.replaceChildren(...items);
    agentsPanel.hidden = list.length === 0;
  }

  function agentState(agent) {
    const names = {
      logged_out: "logged out",
      available: "available",
      reserved: "ringing",
      on_call: "on call",
      wrap_up: "wrap-up",
      paused: "paused",
    };
    const name = names[agent.state] || agent.state;
    return agent.state === "paused" && agent.reason ? `${name}: ${agent.reason}` : name;
  }

  function tickAgents() {
    const elapsed = (performance.now() - agents.fetchedAt) / 1000;
    agentsList.querySelectorAll("li[data-agent]").forEach((item, i) => {
      const agent = agents.list[i];
      if (!agent) return;
      item.querySelector('[data-field="in-state"]').textContent = clockTime(
        agent.seconds_in_state + elapsed,
      );
    });
  }

  // -------------------------------------------------------------------------------------
  // Fetching

  /**
   * Wraps an async `run` so that calls coalesce: it starts at most once every
   * REFRESH_GAP_MS, and a call made while it runs makes it run once more afterwards.
   */
  function debounced(run) {
    let timer = null;
    let running = false;
    let again = false;
    let last = -Infinity;
    const fire = async () => {
      timer = null;
      running = true;
      last = performance.now();
      try {
        await run();
      } catch (error) {
        failed(error);
      } finally {
        running = false;
        if (again && !stopped) {
          again = false;
          request();
        }
      }
    };
    const request = () => {
      if (stopped) return;
      if (running) {
        again = true;
        return;
      }
      if (timer !== null) return;
      timer = setTimeout(fire, Math.max(0, last + REFRESH_GAP_MS - performance.now()));
    };
    return request;
  }

  /**
   * For records: `request` now, and once more SETTLE_MS after the last call, when the
   * server's snapshot has caught up with the record.
   */
  function settling(request) {
    let timer = null;
    const touch = () => {
      request();
      clearTimeout(timer);
      timer = setTimeout(request, SETTLE_MS);
    };
    touch.cancel = () => clearTimeout(timer);
    return touch;
  }

  async function refreshQueue(name) {
    try {
      const view = await api(`/api/queues/${encodeURIComponent(name)}`);
      if (cards.has(name)) draw(cards.get(name), view);
      clearMessage("error");
    } catch (error) {
      // A queue removed by a reconfiguration: list them all again.
      if (error instanceof ApiFailure && error.status === 404) {
        refreshAll();
        return;
      }
      throw error;
    }
  }

  const refreshAgents = debounced(async () => {
    drawAgents(await api("/api/agents"));
  });
  const touchAgents = settling(refreshAgents);

  /** Lists the queues again (some may be new or gone), then fetches each one. */
  const refreshAll = debounced(async () => {
    const briefs = await api("/api/queues");
    const names = new Set(briefs.map((brief) => brief.name));
    for (const name of [...cards.keys()]) if (!names.has(name)) dropCard(name);
    for (const brief of briefs) {
      const card = cardFor(brief.name);
      // Draw the brief at once (no callers yet on a new card), then the full view.
      if (!card.view) draw(card, brief);
      card.refresh();
    }
    refreshAgents();
    clearMessage("error");
    if (cards.size === 0) showMessage("error", "The server has no queues configured.");
  });

  // -------------------------------------------------------------------------------------
  // The event stream

  function connect() {
    if (stopped) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${window.location.host}/api/events?token=${encodeURIComponent(token)}`;
    if (lastSeq > 0) url += `&after=${lastSeq}`;
    let opened = false;
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      opened = true;
      reconnectDelay = RECONNECT_MIN_MS;
      clearInterval(pollTimer);
      pollTimer = null;
      setConnection("live", "Live");
      // Whatever happened while the socket was down or opening.
      refreshAll();
    });
    socket.addEventListener("message", (event) => {
      let record;
      try {
        record = JSON.parse(event.data);
      } catch (_) {
        console.warn("wallboard: a stream message is not JSON:", event.data);
        return;
      }
      if (typeof record.seq === "number" && record.seq > lastSeq) lastSeq = record.seq;
      if (record.queue) {
        if (cards.has(record.queue)) cards.get(record.queue).touch();
        else refreshAll();
      } else {
        // Agent events name no queue; an agent may serve several.
        for (const card of cards.values()) card.touch();
      }
      touchAgents();
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (stopped) return;
      if (!opened) {
        // A browser does not tell why an upgrade failed: ask the API whether the token
        // may watch the stream (supervisors only, as /api/calls).
        api("/api/calls").catch(failed);
      }
      scheduleReconnect(event.code);
    });
  }

  function scheduleReconnect(code) {
    if (stopped) return;
    const seconds = Math.round(reconnectDelay / 1000);
    setConnection("offline", `Reconnecting in ${seconds}${NBSP}s`);
    console.info(`wallboard: the event stream closed (code ${code}); reconnecting`);
    if (pollTimer === null) {
      pollTimer = setInterval(refreshAll, POLL_WHILE_OFFLINE_MS);
    }
    reconnectTimer = setTimeout(() => {
      setConnection("connecting", "Connecting…");
      connect();
    }, reconnectDelay);
    reconnectDelay = Math.min(RECONNECT_MAX_MS, reconnectDelay * 2);
  }

  // -------------------------------------------------------------------------------------
  // Start

  function tick() {
    clock.textContent = new Date().toLocaleTimeString([], { hour12: false });
    for (const card of cards.values()) tickQueue(card);
    tickAgents();
  }

  function start() {
    tick();
    // Aligned to the wall clock's seconds, so the waits change with the clock.
    setTimeout(() => {
      tick();
      setInterval(tick, 1000);
    }, 1000 - (Date.now() % 1000));

    if (!token) {
      stopped = true;
      setConnection("refused", "No token");
      showMessage(
        "no-token",
        "No token: open /wallboard?token=TOKEN with a supervisor token from the " +
          "[[api.tokens]] section of the configuration.",
      );
      return;
    }
    // Check the token before opening the stream, so that a refusal shows its reason.
    api("/api/queues")
      .then(() => {
        refreshAll();
        connect();
      })
      .catch(failed);
  }

  start();
})();
