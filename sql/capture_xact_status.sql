-- capture_xact_status.sql: commit status of the transaction ids that markers carry.
--
-- A marker's xid= is the 32-bit xmin of the row it announced.  pg_xact_status()
-- wants an xid8, so each xid is placed in the newest epoch that puts it before the
-- next unassigned xid.  The result per xid is 'committed', 'aborted',
-- 'in progress', or NULL when the xid is older than the commit log still kept
-- (then nothing can be said).  A subtransaction's xid (DDL inside a SAVEPOINT)
-- reads 'aborted' when that savepoint was rolled back, even if the top-level
-- transaction committed.  Parameter: %(xids)s, an array of 32-bit xids.
WITH nxt AS (
    SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint AS next_xid
), x AS (
    SELECT u.xid,
           CASE WHEN u.xid < pg_catalog.mod(n.next_xid, 4294967296)
                THEN (n.next_xid / 4294967296) * 4294967296 + u.xid
                ELSE (n.next_xid / 4294967296 - 1) * 4294967296 + u.xid
           END AS xid8
      FROM pg_catalog.unnest(%(xids)s::bigint[]) AS u(xid), nxt AS n
)
SELECT x.xid,
       CASE WHEN x.xid8 < 3 THEN NULL
            ELSE pg_catalog.pg_xact_status(x.xid8::text::pg_catalog.xid8) END AS status
  FROM x;
