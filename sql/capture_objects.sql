-- capture_objects.sql: the auditor's own objects in one database, by identity, for reconcile.
--
-- Reconcile judges DDL as tampering when the objects it touched (the audit rows carry
-- each object's classid and objid) are the auditor's: its schema, the relations,
-- sequences, indexes, constraints, types, functions, triggers, rules and policies in
-- it, and the event triggers that run its function (wherever that function now lives).
-- It also needs the unqualified names of those objects that no other object in the
-- database carries (an unqualified name in a log-only statement can then only mean the
-- auditor's), and the search_path the audit function runs with.
-- Catalog-only, readable by the reader role.  Parameter: %(schema)s, the schema's name.
WITH ns AS (
    SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = %(schema)s
), rels AS (
    SELECT c.oid, c.relname FROM pg_catalog.pg_class AS c, ns WHERE c.relnamespace = ns.oid
), evt AS (
    SELECT e.oid, e.evtname, e.evtfoid FROM pg_catalog.pg_event_trigger AS e
     WHERE e.evtfoid IN (SELECT p.oid FROM pg_catalog.pg_proc AS p, ns WHERE p.pronamespace = ns.oid)
        OR e.evtname LIKE pg_catalog.replace(%(schema)s, '_', '\_') || '\_%%'
), objs AS (
    SELECT 'pg_catalog.pg_namespace'::pg_catalog.regclass AS classid, ns.oid AS objid,
           %(schema)s::text AS name FROM ns
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, r.oid, r.relname::text FROM rels AS r
    UNION ALL
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid, p.proname::text
      FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace IN (SELECT oid FROM ns) OR p.oid IN (SELECT evtfoid FROM evt)
    UNION ALL
    SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid, t.typname::text
      FROM pg_catalog.pg_type AS t, ns WHERE t.typnamespace = ns.oid
    UNION ALL
    SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, k.oid, k.conname::text
      FROM pg_catalog.pg_constraint AS k, ns WHERE k.connamespace = ns.oid
    UNION ALL
    SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, t.oid, t.tgname::text
      FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'pg_catalog.pg_rewrite'::pg_catalog.regclass, w.oid, w.rulename::text
      FROM pg_catalog.pg_rewrite AS w WHERE w.ev_class IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass, y.oid, y.polname::text
      FROM pg_catalog.pg_policy AS y WHERE y.polrelid IN (SELECT oid FROM rels)
    UNION ALL
    SELECT 'pg_catalog.pg_event_trigger'::pg_catalog.regclass, e.oid, e.evtname::text FROM evt AS e
), names AS (
    SELECT DISTINCT o.name FROM objs AS o
)
SELECT pg_catalog.jsonb_build_object(
    'objects', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                           o.classid::pg_catalog.oid::bigint, o.objid::bigint, o.name))
                  FROM objs AS o),
    'elsewhere', (SELECT pg_catalog.jsonb_agg(DISTINCT x.name) FROM (
        SELECT c.relname::text AS name FROM pg_catalog.pg_class AS c, names AS m
         WHERE c.relname = m.name AND c.relnamespace NOT IN (SELECT oid FROM ns)
        UNION ALL
        SELECT p.proname::text FROM pg_catalog.pg_proc AS p, names AS m
         WHERE p.proname = m.name AND p.pronamespace NOT IN (SELECT oid FROM ns)
           AND p.oid NOT IN (SELECT evtfoid FROM evt)
        UNION ALL
        SELECT t.typname::text FROM pg_catalog.pg_type AS t, names AS m
         WHERE t.typname = m.name AND t.typnamespace NOT IN (SELECT oid FROM ns)
        UNION ALL
        SELECT g.tgname::text FROM pg_catalog.pg_trigger AS g, names AS m
         WHERE g.tgname = m.name AND g.tgrelid NOT IN (SELECT oid FROM rels)
        UNION ALL
        SELECT n.nspname::text FROM pg_catalog.pg_namespace AS n, names AS m
         WHERE n.nspname = m.name AND n.oid NOT IN (SELECT oid FROM ns)) AS x),
    'search_path', (SELECT pg_catalog.jsonb_build_object('config', p.proconfig)
                      FROM pg_catalog.pg_proc AS p, ns
                     WHERE p.pronamespace = ns.oid AND p.proname = 'record_event'
                       AND p.pronargs = 0
                     LIMIT 1)
) AS objects;
