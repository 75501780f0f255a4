-- mail_install.sql: the mail side's tables: delivery record, scan state, mail configuration (idempotent).
--
-- Applied by `auditor install` right after capture_install.sql, in the same transaction.
-- The audit table is append-only, so what happened to each statement's mail is kept
-- here: one `deliveries` row per statement (stable Message-ID, status, attempts, last
-- error), and one `delivery_events` row per audit row it covers (the primary key makes
-- a row claimable once).  `mail_state` is auditor notify's scan position; `mail_config`
-- the recipients (and, in plpython mode, SMTP settings, password and templates: it is
-- readable by superusers only).  CREATE ... IF NOT EXISTS: the record survives upgrades.
-- Placeholder: {{schema}}.
--
-- mail_state.scanned_to: every audit row with a lower or equal id is claimed, or will
-- never become visible.  auditor notify advances it with a probe: probe_id = the
-- events sequence's last value, then probe_xid = an xid drawn after that read (by the
-- statement that stores the probe).  Ids are drawn by transactions that already have
-- their xid (record_event() takes the xid first), so every row up to probe_id belongs
-- to a transaction older than probe_xid; once a snapshot's xmin reaches probe_xid they
-- have all ended, and a claim that sees all visible rows up to probe_id may move
-- scanned_to there.  (This needs the serial's default CACHE 1.)
-- At the first install it starts at the current last row: history is not mailed.

CREATE TABLE IF NOT EXISTS {schema}.deliveries (
    id              bigserial   PRIMARY KEY,
    first_event_id  bigint      NOT NULL UNIQUE,  -- the statement's first audit row
    message_id      text        NOT NULL UNIQUE,  -- stable: a resend carries the same one
    event_ids       bigint[]    NOT NULL,
    command_tags    text[]      NOT NULL,
    mode            text        NOT NULL CHECK (mode IN ('outbox', 'plpython')),
    status          text        NOT NULL CHECK (status IN ('pending', 'failing', 'delivered')),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    next_attempt_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    last_attempt_at timestamptz,
    delivered_at    timestamptz
);
COMMENT ON TABLE {schema}.deliveries IS
    'auditor: one row per statement mailed to the DBA team (auditor notify / plpython mode)';
CREATE INDEX IF NOT EXISTS deliveries_undelivered ON {schema}.deliveries (next_attempt_at)
    WHERE status <> 'delivered';

CREATE TABLE IF NOT EXISTS {schema}.delivery_events (
    event_id    bigint PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES {schema}.deliveries (id)
);
CREATE INDEX IF NOT EXISTS delivery_events_delivery ON {schema}.delivery_events (delivery_id);

CREATE TABLE IF NOT EXISTS {schema}.mail_state (
    id          integer PRIMARY KEY CHECK (id = 1),
    scanned_to  bigint  NOT NULL,
    probe_id    bigint,
    probe_xid   bigint
);
INSERT INTO {schema}.mail_state (id, scanned_to)
SELECT 1, coalesce(pg_catalog.max(e.id), 0) FROM {schema}.events AS e
ON CONFLICT (id) DO NOTHING;

CREATE TABLE IF NOT EXISTS {schema}.mail_config (
    id               integer PRIMARY KEY CHECK (id = 1),
    mail_from        text,
    mail_to          text[]  NOT NULL DEFAULT '{{}}',
    mail_cc          text[]  NOT NULL DEFAULT '{{}}',
    server_name      text,
    smtp_host        text,
    smtp_port        integer,
    smtp_security    text,
    smtp_username    text,
    smtp_password    text,
    smtp_timeout     double precision,
    smtp_ca_file     text,
    dns_timeout      double precision,
    subject_template text,
    text_template    text,
    html_template    text,
    created_plpython boolean NOT NULL DEFAULT false  -- install created plpython3u here
);

REVOKE ALL ON {schema}.deliveries, {schema}.delivery_events, {schema}.mail_state,
    {schema}.mail_config FROM PUBLIC;
REVOKE ALL ON SEQUENCE {schema}.deliveries_id_seq FROM PUBLIC;
