-- capture_vouch_seen.sql: the hash of the rows a previous run saw, for blocks that now hold more.
--
-- The second half of capture_vouch.sql (same transaction, same row text and hash),
-- for the few blocks where rows were added since (rows of transactions still open at
-- the previous run, or rows put back).  Placeholder: {{schema}}.  Parameters:
-- %(block)s, %(blocks)s (array of block numbers), %(through)s, %(snapshot)s.
SELECT b.block,
       pg_catalog.encode(pg_catalog.sha256(pg_catalog.textsend(
           coalesce(pg_catalog.string_agg(b.h, ',' ORDER BY b.id), ''))), 'hex') AS seen_hash
  FROM (SELECT e.id,
               e.id / %(block)s::bigint AS block,
               e.id::text || ':' || e.xmin::text || ':' || pg_catalog.encode(pg_catalog.sha256(
                   pg_catalog.textsend(ROW(e.id, e.event, e.command_tag, e.objects, e.query,
                       e.caller_context, e.statement_time, e.clock_time, e.session_user_name,
                       e.current_user_name, e.login_user_name, e.database_name, e.client_addr,
                       e.client_port, e.server_addr, e.server_port, e.application_name,
                       e.backend_pid, e.session_id, e.vxid, e.xid)::text)), 'hex') AS h
          FROM {schema}.events AS e
         WHERE e.id / %(block)s::bigint = ANY (%(blocks)s::bigint[])
           AND e.id <= %(through)s::bigint AND e.xid >= 0
           AND pg_catalog.pg_visible_in_snapshot(
                   CASE WHEN e.xid >= 0 THEN e.xid ELSE 0 END::text::pg_catalog.xid8,
                   %(snapshot)s::pg_catalog.pg_snapshot)) AS b
 GROUP BY b.block;
