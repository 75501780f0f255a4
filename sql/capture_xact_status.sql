-- capture_xact_status.sql: commit status of the transaction ids that markers carry.
--
-- A marker's xid= is the 32-bit xmin of the row it announced.  pg_xact_status()
-- wants an xid8, so each xid is placed in the epoch that puts it within 2^31 of
-- this snapshot's xmax (the usual wraparound rule; an xid still running may lie
-- above xmax).  The result per xid is 'committed', 'aborted', 'in progress', or
-- NULL when the xid is older than the commit log still kept (nothing can be said).
-- A subtransaction's xid (DDL inside a SAVEPOINT) reads 'aborted' when that
-- savepoint was rolled back, even if the top-level transaction committed.
-- pg_xact_status() raises an error for an xid not assigned yet (a forged marker);
-- auditor.capture.xact_status then asks again xid by xid.
-- Parameter: %(xids)s, an array of 32-bit xids.
WITH ref AS (
    SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint AS xmax
), guess AS (
    SELECT u.xid, r.xmax, (r.xmax / 4294967296) * 4294967296 + u.xid AS xid8
      FROM pg_catalog.unnest(%(xids)s::bigint[]) AS u(xid), ref AS r
), x AS (
    SELECT g.xid,
           CASE WHEN g.xid8 > g.xmax + 2147483648 THEN g.xid8 - 4294967296
                WHEN g.xid8 < g.xmax - 2147483648 THEN g.xid8 + 4294967296
                ELSE g.xid8 END AS xid8
      FROM guess AS g
)
SELECT x.xid,
       CASE WHEN x.xid8 < 3 THEN NULL
            ELSE pg_catalog.pg_xact_status(x.xid8::text::pg_catalog.xid8) END AS status
  FROM x;
