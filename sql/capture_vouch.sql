-- capture_vouch.sql: one hash per block of audit ids, to verify later what a run vouched for.
--
-- An incremental reconcile judges each audit row once; what stops an intruder from
-- deleting or rewriting it afterwards is this: each run hashes every row (its id,
-- xmin and the text of its 21 columns, ROW(...) so that columns added by a later
-- version change nothing) per block of %(block)s ids, keeps the hashes and its
-- snapshot in the state file, and the next run recomputes the hashes of exactly the
-- rows that snapshot saw (id <= %(through)s, transaction visible in %(snapshot)s)
-- and compares.  A block whose rows were all seen then has one hash for both
-- (seen_rows = all_rows); capture_vouch_seen.sql hashes the seen rows of the others.
-- Run in a REPEATABLE READ transaction with fixed TimeZone, DateStyle and
-- IntervalStyle (the text of a timestamptz depends on them); textsend() keeps the
-- bytes as stored whatever the database encoding.  Only pg_catalog functions.
-- Placeholder: {{schema}}.  Parameters: %(block)s, %(through)s, %(snapshot)s (the
-- previous run's; NULL for the first run).
SELECT b.block,
       pg_catalog.count(*) FILTER (WHERE b.seen) AS seen_rows,
       pg_catalog.count(*) AS all_rows,
       pg_catalog.encode(pg_catalog.sha256(pg_catalog.textsend(
           pg_catalog.string_agg(b.h, ',' ORDER BY b.id))), 'hex') AS all_hash,
       pg_catalog.max(b.id) AS max_id
  FROM (SELECT e.id,
               e.id / %(block)s::bigint AS block,
               -- CASE: a rewritten row's xid may be negative, which xid8 refuses
               CASE WHEN e.id <= %(through)s::bigint AND e.xid >= 0
                    THEN coalesce(pg_catalog.pg_visible_in_snapshot(e.xid::text::pg_catalog.xid8,
                                      %(snapshot)s::pg_catalog.pg_snapshot), false)
                    ELSE false END AS seen,
               e.id::text || ':' || e.xmin::text || ':' || pg_catalog.encode(pg_catalog.sha256(
                   pg_catalog.textsend(ROW(e.id, e.event, e.command_tag, e.objects, e.query,
                       e.caller_context, e.statement_time, e.clock_time, e.session_user_name,
                       e.current_user_name, e.login_user_name, e.database_name, e.client_addr,
                       e.client_port, e.server_addr, e.server_port, e.application_name,
                       e.backend_pid, e.session_id, e.vxid, e.xid)::text)), 'hex') AS h
          FROM {schema}.events AS e) AS b
 GROUP BY b.block
 ORDER BY b.block;
