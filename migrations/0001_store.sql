-- Amico's store: the queue log (every event, in order) and the records derived from it.
-- The same SQL runs on SQLite and PostgreSQL. Times are UTC microseconds since the Unix
-- epoch (`*_us`), durations are milliseconds (`*_ms`); names are the configuration's.

-- Every event, numbered without gaps: the event stream's `seq`.
CREATE TABLE queue_log (
    seq     BIGINT PRIMARY KEY,
    at_us   BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    call_id BIGINT,
    queue   TEXT,
    agent   TEXT,
    body    TEXT NOT NULL
);
CREATE INDEX queue_log_at ON queue_log (at_us);
CREATE INDEX queue_log_call ON queue_log (call_id);

-- One row per call (the CDR), filled in as the call goes.
CREATE TABLE calls (
    call_id          BIGINT PRIMARY KEY,
    arrived_us       BIGINT NOT NULL,
    trunk            TEXT NOT NULL,
    caller           TEXT NOT NULL,
    did              TEXT NOT NULL,
    sip_call_id      TEXT NOT NULL,
    first_queue      TEXT,
    queue            TEXT,
    queued_us        BIGINT,
    answered_us      BIGINT,
    ended_us         BIGINT,
    outcome          TEXT,
    agent            TEXT,
    wait_ms          BIGINT,
    talk_ms          BIGINT,
    abandon_position BIGINT,
    callback         BIGINT NOT NULL DEFAULT 0,
    survey           TEXT
);
CREATE INDEX calls_arrived ON calls (arrived_us);

-- One row per SIP leg of a call: the caller's, each agent rung, each callback dialled.
CREATE TABLE legs (
    call_id     BIGINT NOT NULL,
    leg         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    peer        TEXT NOT NULL,
    sip_call_id TEXT NOT NULL,
    started_us  BIGINT NOT NULL,
    answered_us BIGINT,
    ended_us    BIGINT NOT NULL,
    status      BIGINT,
    end_reason  TEXT NOT NULL,
    PRIMARY KEY (call_id, leg)
);

-- Post-call ratings; `vote` is NULL when the caller did not vote in time.
CREATE TABLE survey_votes (
    call_id BIGINT PRIMARY KEY,
    at_us   BIGINT NOT NULL,
    queue   TEXT NOT NULL,
    agent   TEXT NOT NULL,
    vote    TEXT
);

-- Every agent state change.
CREATE TABLE agent_states (
    seq    BIGINT PRIMARY KEY,
    at_us  BIGINT NOT NULL,
    agent  TEXT NOT NULL,
    state  TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX agent_states_agent ON agent_states (agent, at_us);

-- Each estimated wait announced to a caller, beside what happened.
CREATE TABLE wait_predictions (
    seq          BIGINT PRIMARY KEY,
    call_id      BIGINT NOT NULL,
    queue        TEXT NOT NULL,
    made_us      BIGINT NOT NULL,
    predicted_ms BIGINT NOT NULL,
    actual_ms    BIGINT NOT NULL,
    outcome      TEXT NOT NULL
);
