-- capture_state.sql: everything `auditor status` checks about one database's install, as one jsonb.
--
-- Catalog-only (works before install, after a partial removal, and for a
-- non-superuser such as the reader role).  auditor.capture compares it with what
-- install writes.  Parameter: %(schema)s, the audit schema's name.
WITH ns AS (
    SELECT n.oid, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace AS n WHERE n.nspname = %(schema)s
)
SELECT pg_catalog.jsonb_build_object(
    'schema_exists', EXISTS (SELECT 1 FROM ns),
    'schema_owner', (SELECT pg_catalog.jsonb_build_object(
                         'name', pg_catalog.pg_get_userbyid(ns.nspowner), 'superuser', r.rolsuper)
                       FROM ns JOIN pg_catalog.pg_roles AS r ON r.oid = ns.nspowner),
    'schema_public_privileges', (
        SELECT pg_catalog.jsonb_agg(DISTINCT a.privilege_type)
          FROM ns, pg_catalog.aclexplode(coalesce(ns.nspacl, pg_catalog.acldefault('n', ns.nspowner))) AS a
         WHERE a.grantee = 0),
    'event_triggers', (
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'name', e.evtname, 'event', e.evtevent, 'enabled', e.evtenabled,
                   'function_schema', fn.nspname, 'function', p.proname,
                   'owner', pg_catalog.pg_get_userbyid(e.evtowner), 'tags', e.evttags,
                   -- for foreign event triggers: can it change settings before ours runs?
                   'security_definer', p.prosecdef, 'function_config', p.proconfig,
                   'function_source', CASE WHEN fn.nspname <> %(schema)s THEN p.prosrc END)
                 ORDER BY e.evtname)
          FROM pg_catalog.pg_event_trigger AS e
          JOIN pg_catalog.pg_proc AS p ON p.oid = e.evtfoid
          JOIN pg_catalog.pg_namespace AS fn ON fn.oid = p.pronamespace),
    'functions', (
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'name', p.proname, 'md5', pg_catalog.md5(p.prosrc),
                   'security_definer', p.prosecdef, 'config', p.proconfig,
                   'owner', pg_catalog.pg_get_userbyid(p.proowner), 'owner_superuser', r.rolsuper,
                   -- settings of its SET clauses that only a superuser may set: PostgreSQL
                   -- applies them as the owner at each call, so an owner who may not set
                   -- them (auditor.capture asks has_parameter_privilege on 15+) makes every
                   -- call fail before the body runs
                   'superuser_settings', (
                       SELECT pg_catalog.jsonb_agg(s.name ORDER BY c.n)
                         FROM pg_catalog.unnest(p.proconfig) WITH ORDINALITY AS c(setting, n)
                         JOIN pg_catalog.pg_settings AS s
                           ON s.name = pg_catalog.split_part(c.setting, '=', 1)
                        WHERE s.context = 'superuser'),
                   'public_execute', EXISTS (
                       SELECT 1 FROM pg_catalog.aclexplode(
                                   coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS a
                        WHERE a.grantee = 0))
                 ORDER BY p.proname)
          FROM ns
          JOIN pg_catalog.pg_proc AS p ON p.pronamespace = ns.oid
          JOIN pg_catalog.pg_roles AS r ON r.oid = p.proowner),
    'relations', (
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'name', c.relname, 'kind', c.relkind, 'row_security', c.relrowsecurity,
                   'owner', pg_catalog.pg_get_userbyid(c.relowner),
                   'owner_superuser', (SELECT o.rolsuper FROM pg_catalog.pg_roles AS o
                                        WHERE o.oid = c.relowner),
                   -- 'u': UNLOGGED (emptied by crash recovery, absent from standbys)
                   'persistence', c.relpersistence,
                   -- false: the relcache loads no trigger at all, whatever pg_trigger says
                   'has_triggers', c.relhastriggers,
                   'grants', (
                       SELECT pg_catalog.jsonb_agg(DISTINCT
                                  CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                       ELSE pg_catalog.pg_get_userbyid(a.grantee) END
                                  || ':' || a.privilege_type)
                         FROM pg_catalog.aclexplode(
                                  coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS a
                        WHERE a.grantee <> c.relowner),
                   'public_privileges', (
                       SELECT pg_catalog.jsonb_agg(DISTINCT a.privilege_type)
                         FROM pg_catalog.aclexplode(
                                  coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS a
                        WHERE a.grantee = 0),
                   'owner_privileges', (
                       SELECT pg_catalog.jsonb_agg(DISTINCT a.privilege_type)
                         FROM pg_catalog.aclexplode(
                                  coalesce(c.relacl, pg_catalog.acldefault('r', c.relowner))) AS a
                        WHERE a.grantee = c.relowner))
                 ORDER BY c.relname)
          FROM ns
          JOIN pg_catalog.pg_class AS c ON c.relnamespace = ns.oid
         WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')),
    'table_triggers', (
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'table', c.relname, 'name', t.tgname, 'enabled', t.tgenabled,
                   'internal', t.tgisinternal,
                   'type', t.tgtype, 'has_when', t.tgqual IS NOT NULL,
                   'deferred', t.tgdeferrable AND t.tginitdeferred,
                   'function_schema', fn.nspname, 'function', p.proname)
                 ORDER BY c.relname, t.tgname)
          FROM ns
          JOIN pg_catalog.pg_class AS c ON c.relnamespace = ns.oid
          JOIN pg_catalog.pg_trigger AS t ON t.tgrelid = c.oid
          JOIN pg_catalog.pg_proc AS p ON p.oid = t.tgfoid
          JOIN pg_catalog.pg_namespace AS fn ON fn.oid = p.pronamespace)
) AS state;
