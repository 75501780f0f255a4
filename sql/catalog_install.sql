-- catalog_install.sql: the catalog channel (third witness): the snapshot table and the
-- function that fills it (idempotent; applied by `auditor install` after
-- capture_install.sql, in the same transaction).
--
-- A superuser can silence both other channels at once (SET log_statement = 'none' and a
-- disabled event trigger), edit the catalog with DML (UPDATE pg_proc ...), or change
-- the schema in single-user mode.  What persists is the catalog.  Each call of
-- {{schema}}.catalog_snapshot() stores one row: this database's schema objects, the
-- built-in objects of pg_catalog and information_schema, and the cluster's shared
-- objects, each as a jsonb array of objects
--
--     [classid, key, xmin, identity, related, fields]
--
--   classid  the catalog's OID (pg_class 1259, pg_proc 1255, ...), as in the audit
--            rows' objects (classid/objid), so both can be joined;
--   key      the object's OID (pg_auth_members before PostgreSQL 16 and
--            pg_db_role_setting, which have none: the text 'role:member' / 'db:role');
--   xmin     the catalog row's xmin (the (sub)transaction that last wrote it), which
--            equals the xid / row_xmin of the audit rows of that transaction;
--   identity pg_identify_object()'s identity, for the report;
--   related  OIDs this object belongs to (pg_depend auto, internal, extension and
--            partition dependencies, inheritance parents): a change of a table's
--            index is explained by DDL of the table;
--   fields   what is schema: names, owners, ACLs, options, types, bodies (as md5),
--            never what moves without DDL (relpages, reltuples, relallvisible,
--            relallfrozen, relfrozenxid, relminmxid, relfilenode, relhasindex,
--            relhasrules, relhastriggers, relhassubclass, relispopulated, relrewrite,
--            reltoastrelid, conindid, datfrozenxid, datminmxid, dathasloginevt), found
--            by experiment: ANALYZE, VACUUM (FREEZE, FULL), TRUNCATE, CLUSTER,
--            REINDEX, REFRESH MATERIALIZED VIEW and autovacuum move only those.
-- Temporary schemas (pg_temp_N, pg_toast_temp_N), their objects and pg_toast are left
-- out.  Columns that a server version lacks are read through to_jsonb(row)->'name' (NULL
-- there); what needs a catalog of its own (pg_parameter_acl from 15, the OID of
-- pg_auth_members from 16) is chosen by server_version_num.  A part identical to the
-- previous row's (same md5) is stored as NULL: read it from the latest row with that
-- digest.  Each snapshot logs one line 'auditor-catalog-snapshot v1 schema=... id=...
-- database=...' (RAISE LOG), so that the logs read reach its time.  Placeholders:
-- {{schema}} (identifier), {{schema_name}} (literal).

CREATE TABLE IF NOT EXISTS {schema}.catalog_snapshots (
    id                 bigserial   PRIMARY KEY,
    taken_at           timestamptz NOT NULL,   -- statement_timestamp() of the snapshot
    reason             text        NOT NULL,   -- install, reconcile
    taken_by           text        NOT NULL,   -- session_user
    database_name      text        NOT NULL,
    server_version_num integer     NOT NULL,
    xid_snapshot       text        NOT NULL,   -- pg_current_snapshot(): which transactions it saw
    oldest_xact_start  timestamptz,            -- start of the oldest transaction then in progress
    database_digest    text        NOT NULL,   -- md5 of each part's text
    builtin_digest     text        NOT NULL,
    cluster_digest     text        NOT NULL,
    database_objects   jsonb,                  -- NULL: same as the previous row with this digest
    builtin_objects    jsonb,
    cluster_objects    jsonb
);
-- The catalogs (by classid) a snapshot follows; NULL: the first set (auditor <= 0.17:
-- no publications, subscriptions, default privileges, foreign servers, user mappings,
-- casts or languages).  Two snapshots are compared on the catalogs both follow.
ALTER TABLE {schema}.catalog_snapshots ADD COLUMN IF NOT EXISTS catalogs integer[];
COMMENT ON TABLE {schema}.catalog_snapshots IS
    'auditor: catalog snapshots (the third witness); append-only';

DROP TRIGGER IF EXISTS catalog_snapshots_append_only ON {schema}.catalog_snapshots;
CREATE TRIGGER catalog_snapshots_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON {schema}.catalog_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();
ALTER TABLE {schema}.catalog_snapshots ENABLE ALWAYS TRIGGER catalog_snapshots_append_only;
REVOKE ALL ON {schema}.catalog_snapshots FROM PUBLIC;
REVOKE ALL ON SEQUENCE {schema}.catalog_snapshots_id_seq FROM PUBLIC;

-- One snapshot, stored; returns its id.  SECURITY DEFINER (owned by the installing
-- superuser) because pg_authid (a hash of each password hash) and pg_stat_activity of
-- every session are superuser-only, and so that the reader role can take a snapshot
-- without any right to write the table itself: the content always comes from the
-- catalog, never from the caller.
CREATE OR REPLACE FUNCTION {schema}.catalog_snapshot(p_reason text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $auditor$
DECLARE
    v_version  integer := current_setting('server_version_num')::integer;
    v_db       jsonb;
    v_builtin  jsonb;
    v_cluster  jsonb;
    v_members  jsonb;
    v_params   jsonb := '[]'::jsonb;
    v_prev     record;
    v_digests  text[];
    v_id       bigint;
    v_query    text;
    v_part     text[];
BEGIN
    -- One query, with the columns of this server version filled in (to_jsonb(row) would
    -- do without, at ten times the cost on pg_proc and pg_attribute).
    v_query := $query$
    WITH cols AS (
        SELECT a.attrelid,
               pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
                   pg_catalog.md5(ad.adbin::text), a.attidentity, a.attgenerated,
                   a.attcollation, a.attacl::text, a.attoptions, a.attfdwoptions,
                   a.attstattarget, a.attstorage, @attcompression@, a.attislocal,
                   a.attinhcount) ORDER BY a.attnum) AS columns
          FROM pg_catalog.pg_attribute AS a
          LEFT JOIN pg_catalog.pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped
         GROUP BY a.attrelid
    ), deps AS (
        -- what each object belongs to: auto, internal, extension and partition
        -- dependencies, and inheritance parents
        SELECT r.classid, r.objid, pg_catalog.jsonb_agg(DISTINCT r.ref::bigint) AS related
          FROM (SELECT d.classid, d.objid, d.refobjid AS ref
                  FROM pg_catalog.pg_depend AS d
                 WHERE d.deptype IN ('a', 'i', 'e', 'x', 'P', 'S')
                UNION ALL
                SELECT 1259::oid, h.inhrelid, h.inhparent FROM pg_catalog.pg_inherits AS h) AS r
         GROUP BY r.classid, r.objid
    ), objs AS (
        -- relations (tables, views, sequences, indexes, ...) with their columns
        SELECT 1259::oid AS classid, c.oid, c.relnamespace AS nsp, c.xmin::text::bigint AS xmin,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'name', c.relname, 'schema', c.relnamespace, 'owner', c.relowner,
                   'kind', c.relkind, 'persistence', c.relpersistence, 'am', c.relam,
                   'tablespace', c.reltablespace, 'acl', c.relacl::text,
                   'options', c.reloptions, 'rowtype', c.reltype, 'oftype', c.reloftype,
                   'rls', c.relrowsecurity, 'force_rls', c.relforcerowsecurity,
                   'replident', c.relreplident, 'partition', c.relispartition,
                   'partbound', pg_catalog.md5(c.relpartbound::text),
                   'columns', cols.columns,
                   'index', CASE WHEN i.indexrelid IS NOT NULL THEN pg_catalog.jsonb_build_object(
                                  'table', i.indrelid, 'unique', i.indisunique,
                                  'primary', i.indisprimary, 'exclusion', i.indisexclusion,
                                  'immediate', i.indimmediate, 'clustered', i.indisclustered,
                                  'valid', i.indisvalid, 'ready', i.indisready,
                                  'live', i.indislive, 'replident', i.indisreplident,
                                  'keys', i.indkey::text, 'key_columns', i.indnkeyatts,
                                  'collations', i.indcollation::text,
                                  'opclasses', i.indclass::text, 'flags', i.indoption::text,
                                  'exprs', pg_catalog.md5(i.indexprs::text),
                                  'predicate', pg_catalog.md5(i.indpred::text),
                                  'nulls_not_distinct', @indnullsnotdistinct@) END,
                   'sequence', CASE WHEN sq.seqrelid IS NOT NULL THEN pg_catalog.jsonb_build_array(
                                  sq.seqtypid, sq.seqstart, sq.seqincrement, sq.seqmax,
                                  sq.seqmin, sq.seqcache, sq.seqcycle) END
               )) AS fields,
               pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(c.relname)
                   AS identity
          FROM pg_catalog.pg_class AS c
          JOIN pg_catalog.pg_namespace AS cn ON cn.oid = c.relnamespace
          LEFT JOIN cols ON cols.attrelid = c.oid AND c.relkind NOT IN ('i', 'I')
          LEFT JOIN pg_catalog.pg_index AS i ON i.indexrelid = c.oid
          LEFT JOIN pg_catalog.pg_sequence AS sq ON sq.seqrelid = c.oid
         WHERE c.relpersistence <> 't' AND c.relkind <> 't'
        UNION ALL
        -- functions, procedures, aggregates (bodies as md5)
        SELECT 1255, p.oid, p.pronamespace, p.xmin::text::bigint,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'name', p.proname, 'schema', p.pronamespace, 'owner', p.proowner,
                   'language', p.prolang, 'kind', p.prokind, 'security_definer', p.prosecdef,
                   'leakproof', p.proleakproof, 'strict', p.proisstrict,
                   'returns_set', p.proretset, 'volatility', p.provolatile,
                   'parallel', p.proparallel, 'returns', p.prorettype,
                   'args', p.proargtypes::text, 'all_args', p.proallargtypes::text,
                   'arg_modes', p.proargmodes::text, 'arg_names', p.proargnames,
                   'arg_defaults', pg_catalog.md5(p.proargdefaults::text),
                   'transforms', p.protrftypes::text,
                   'body', pg_catalog.md5(p.prosrc), 'binary', pg_catalog.md5(p.probin),
                   'sql_body', pg_catalog.md5(@prosqlbody@::text),
                   'settings', p.proconfig, 'acl', p.proacl::text,
                   'support', p.prosupport, 'cost', p.procost, 'rows', p.prorows)) AS fields,
               NULL::text
          FROM pg_catalog.pg_proc AS p
        UNION ALL
        SELECT 2617, o.oid, o.oprnamespace, o.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', o.oprname, 'schema', o.oprnamespace, 'owner', o.oprowner,
                   'kind', o.oprkind, 'left', o.oprleft, 'right', o.oprright,
                   'result', o.oprresult, 'code', o.oprcode, 'restrict', o.oprrest,
                   'join', o.oprjoin, 'commutator', o.oprcom, 'negator', o.oprnegate,
                   'merges', o.oprcanmerge, 'hashes', o.oprcanhash),
               NULL::text
          FROM pg_catalog.pg_operator AS o
        UNION ALL
        -- types and domains; a relation's row type and automatic array types are part
        -- of their relation / element type and are left out
        SELECT 1247, t.oid, t.typnamespace, t.xmin::text::bigint,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'name', t.typname, 'schema', t.typnamespace, 'owner', t.typowner,
                   'type', t.typtype, 'category', t.typcategory, 'base', t.typbasetype,
                   'typmod', t.typtypmod, 'not_null', t.typnotnull,
                   'collation', t.typcollation, 'acl', t.typacl::text,
                   'default', pg_catalog.md5(t.typdefaultbin::text), 'relation', t.typrelid,
                   'element', t.typelem, 'array', t.typarray, 'length', t.typlen,
                   'by_value', t.typbyval, 'align', t.typalign, 'storage', t.typstorage,
                   'functions', pg_catalog.jsonb_build_array(t.typinput, t.typoutput,
                       t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze,
                       @typsubscript@),
                   'labels', (SELECT pg_catalog.jsonb_agg(e.enumlabel ORDER BY e.enumsortorder)
                                FROM pg_catalog.pg_enum AS e WHERE e.enumtypid = t.oid))),
               NULL::text
          FROM pg_catalog.pg_type AS t
         WHERE NOT (t.typrelid <> 0 AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_class AS rc
                         WHERE rc.oid = t.typrelid AND rc.relkind <> 'c'))
           AND NOT (t.typelem <> 0 AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_type AS et
                         WHERE et.oid = t.typelem AND et.typarray = t.oid))
        UNION ALL
        SELECT 2606, k.oid, k.connamespace, k.xmin::text::bigint,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'name', k.conname, 'schema', k.connamespace, 'type', k.contype,
                   'deferrable', k.condeferrable, 'deferred', k.condeferred,
                   'validated', k.convalidated, 'table', k.conrelid, 'domain', k.contypid,
                   'references', k.confrelid, 'on_update', k.confupdtype,
                   'on_delete', k.confdeltype, 'match', k.confmatchtype,
                   'local', k.conislocal, 'inherited', k.coninhcount,
                   'no_inherit', k.connoinherit, 'keys', k.conkey, 'foreign_keys', k.confkey,
                   'exclusion_ops', k.conexclop::text,
                   'expression', pg_catalog.md5(k.conbin::text),
                   'enforced', @conenforced@,
                   'period', @conperiod@)),
               CASE WHEN k.conrelid <> 0 THEN pg_catalog.quote_ident(k.conname) || ' on '
                    || pg_catalog.quote_ident(kn.nspname) || '.' || pg_catalog.quote_ident(kc.relname) END
          FROM pg_catalog.pg_constraint AS k
          LEFT JOIN pg_catalog.pg_class AS kc ON kc.oid = k.conrelid
          LEFT JOIN pg_catalog.pg_namespace AS kn ON kn.oid = kc.relnamespace
        UNION ALL
        SELECT 2620, g.oid, c.relnamespace, g.xmin::text::bigint,
               pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                   'name', g.tgname, 'table', g.tgrelid, 'function', g.tgfoid,
                   'type', g.tgtype, 'enabled', g.tgenabled, 'internal', g.tgisinternal,
                   'constraint', g.tgconstraint, 'deferrable', g.tgdeferrable,
                   'deferred', g.tginitdeferred, 'args', pg_catalog.md5(g.tgargs::text),
                   'columns', g.tgattr::text, 'when', pg_catalog.md5(g.tgqual::text),
                   'old_table', g.tgoldtable, 'new_table', g.tgnewtable)),
               NULL::text
          FROM pg_catalog.pg_trigger AS g
          JOIN pg_catalog.pg_class AS c ON c.oid = g.tgrelid
         WHERE c.relpersistence <> 't'
        UNION ALL
        SELECT 3466, v.oid, NULL::oid, v.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', v.evtname, 'event', v.evtevent, 'owner', v.evtowner,
                   'function', v.evtfoid, 'enabled', v.evtenabled, 'tags', v.evttags),
               NULL::text
          FROM pg_catalog.pg_event_trigger AS v
        UNION ALL
        SELECT 2615, n.oid, n.oid, n.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', n.nspname, 'owner', n.nspowner, 'acl', n.nspacl::text),
               NULL::text
          FROM pg_catalog.pg_namespace AS n
        UNION ALL
        SELECT 3079, x.oid, x.extnamespace, x.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', x.extname, 'owner', x.extowner, 'schema', x.extnamespace,
                   'relocatable', x.extrelocatable, 'version', x.extversion,
                   'config', x.extconfig::text, 'conditions', x.extcondition),
               NULL::text
          FROM pg_catalog.pg_extension AS x
        UNION ALL
        SELECT 3256, y.oid, c.relnamespace, y.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', y.polname, 'table', y.polrelid, 'command', y.polcmd,
                   'permissive', y.polpermissive, 'roles', y.polroles::text,
                   'using', pg_catalog.md5(y.polqual::text),
                   'with_check', pg_catalog.md5(y.polwithcheck::text)),
               NULL::text
          FROM pg_catalog.pg_policy AS y
          JOIN pg_catalog.pg_class AS c ON c.oid = y.polrelid
        UNION ALL
        -- rules, and the _RETURN rule that is a view's definition
        SELECT 2618, w.oid, c.relnamespace, w.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', w.rulename, 'table', w.ev_class, 'event', w.ev_type,
                   'enabled', w.ev_enabled, 'instead', w.is_instead,
                   'where', pg_catalog.md5(w.ev_qual::text),
                   'action', pg_catalog.md5(w.ev_action::text)),
               NULL::text
          FROM pg_catalog.pg_rewrite AS w
          JOIN pg_catalog.pg_class AS c ON c.oid = w.ev_class
         WHERE c.relpersistence <> 't'
        UNION ALL
        -- publications (logical replication of this database's rows to elsewhere) and
        -- what they publish; the version's own columns through to_jsonb
        SELECT 6104, b.oid, NULL::oid, b.xmin::text::bigint,
               pg_catalog.jsonb_build_object('name', b.pubname, 'owner', b.pubowner)
                   || (pg_catalog.to_jsonb(b) - 'oid' - 'pubname' - 'pubowner'),
               NULL::text
          FROM pg_catalog.pg_publication AS b
        UNION ALL
        SELECT 6106, pr.oid, c.relnamespace, pr.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'publication', pr.prpubid, 'table', pr.prrelid,
                   'where', pg_catalog.md5((pg_catalog.to_jsonb(pr) ->> 'prqual')),
                   'columns', pg_catalog.to_jsonb(pr) -> 'prattrs'),
               NULL::text
          FROM pg_catalog.pg_publication_rel AS pr
          JOIN pg_catalog.pg_class AS c ON c.oid = pr.prrelid
        @pubschemas@
        UNION ALL
        -- this database's subscriptions (pg_subscription is shared, one row per
        -- database); the connection string as a hash (it may hold a password); not
        -- subenabled, subskiplsn and subtwophasestate, which the apply worker writes itself
        SELECT 6100, u.oid, NULL::oid, u.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', u.subname, 'owner', u.subowner,
                   'conninfo', pg_catalog.md5(u.subconninfo))
                   || (pg_catalog.to_jsonb(u) - 'oid' - 'subname' - 'subowner' - 'subdbid'
                       - 'subconninfo' - 'subenabled' - 'subskiplsn' - 'subtwophasestate'),
               NULL::text
          FROM pg_catalog.pg_subscription AS u
         WHERE u.subdbid = (SELECT d.oid FROM pg_catalog.pg_database AS d
                             WHERE d.datname = pg_catalog.current_database())
        UNION ALL
        -- default privileges (what future objects grant, and to whom)
        SELECT 826, da.oid, nullif(da.defaclnamespace, 0), da.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'role', da.defaclrole, 'schema', nullif(da.defaclnamespace, 0),
                   'objtype', da.defaclobjtype, 'acl', da.defaclacl::text),
               NULL::text
          FROM pg_catalog.pg_default_acl AS da
        UNION ALL
        -- foreign data wrappers, servers and user mappings (a way out of the database;
        -- a mapping's options hold passwords: a hash)
        SELECT 2328, fw.oid, NULL::oid, fw.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', fw.fdwname, 'owner', fw.fdwowner, 'handler', fw.fdwhandler,
                   'validator', fw.fdwvalidator, 'acl', fw.fdwacl::text,
                   'options', fw.fdwoptions::text),
               NULL::text
          FROM pg_catalog.pg_foreign_data_wrapper AS fw
        UNION ALL
        SELECT 1417, fs.oid, NULL::oid, fs.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', fs.srvname, 'owner', fs.srvowner, 'wrapper', fs.srvfdw,
                   'type', fs.srvtype, 'version', fs.srvversion, 'acl', fs.srvacl::text,
                   'options', pg_catalog.md5(fs.srvoptions::text)),
               NULL::text
          FROM pg_catalog.pg_foreign_server AS fs
        UNION ALL
        SELECT 1418, um.oid, NULL::oid, um.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'role', um.umuser, 'server', um.umserver,
                   'options', pg_catalog.md5(um.umoptions::text)),
               NULL::text
          FROM pg_catalog.pg_user_mapping AS um
        UNION ALL
        -- casts and languages: initdb's own count as built in (pg_catalog's OID, 11)
        SELECT 2605, ca.oid, CASE WHEN ca.oid < 16384 THEN 11::oid END, ca.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'source', ca.castsource, 'target', ca.casttarget, 'function', ca.castfunc,
                   'context', ca.castcontext, 'method', ca.castmethod),
               NULL::text
          FROM pg_catalog.pg_cast AS ca
        UNION ALL
        SELECT 2612, la.oid, CASE WHEN la.oid < 16384 THEN 11::oid END, la.xmin::text::bigint,
               pg_catalog.jsonb_build_object(
                   'name', la.lanname, 'owner', la.lanowner, 'pl', la.lanispl,
                   'trusted', la.lanpltrusted, 'handler', la.lanplcallfoid,
                   'inline', la.laninline, 'validator', la.lanvalidator,
                   'acl', la.lanacl::text),
               NULL::text
          FROM pg_catalog.pg_language AS la
    ), kept AS (
        SELECT o.*, coalesce(ns.nspname IN ('pg_catalog', 'information_schema'), false) AS builtin
          FROM objs AS o
          LEFT JOIN pg_catalog.pg_namespace AS ns ON ns.oid = o.nsp
         WHERE ns.nspname IS NULL
            OR NOT (ns.nspname = 'pg_toast' OR ns.nspname LIKE 'pg\_temp\_%'
                    OR ns.nspname LIKE 'pg\_toast\_temp\_%')
    ), built AS (
        SELECT k.builtin,
               pg_catalog.jsonb_build_array(
                   k.classid::bigint, k.oid::bigint, k.xmin,
                   coalesce(k.identity,
                            (pg_catalog.pg_identify_object(k.classid, k.oid, 0)).identity),
                   coalesce(deps.related, '[]'::jsonb),
                   k.fields) AS obj,
               k.classid, k.oid
          FROM kept AS k
          LEFT JOIN deps ON deps.classid = k.classid AND deps.objid = k.oid
    )
    SELECT coalesce(pg_catalog.jsonb_agg(r.obj ORDER BY r.classid, r.oid)
                        FILTER (WHERE NOT r.builtin), '[]'::jsonb),
           coalesce(pg_catalog.jsonb_agg(r.obj ORDER BY r.classid, r.oid)
                        FILTER (WHERE r.builtin), '[]'::jsonb)
      FROM built AS r
    $query$;
    FOREACH v_part SLICE 1 IN ARRAY ARRAY[
        ['@attcompression@', CASE WHEN v_version >= 140000 THEN 'a.attcompression' ELSE 'NULL::"char"' END],
        ['@prosqlbody@', CASE WHEN v_version >= 140000 THEN 'p.prosqlbody' ELSE 'NULL::text' END],
        ['@typsubscript@', CASE WHEN v_version >= 140000 THEN 't.typsubscript' ELSE 'NULL::regproc' END],
        ['@indnullsnotdistinct@', CASE WHEN v_version >= 150000 THEN 'i.indnullsnotdistinct' ELSE 'NULL::boolean' END],
        ['@conenforced@', CASE WHEN v_version >= 180000 THEN 'k.conenforced' ELSE 'NULL::boolean' END],
        ['@conperiod@', CASE WHEN v_version >= 180000 THEN 'k.conperiod' ELSE 'NULL::boolean' END],
        -- publications of whole schemas (FOR TABLES IN SCHEMA) are PostgreSQL 15's
        ['@pubschemas@', CASE WHEN v_version >= 150000 THEN
            'UNION ALL SELECT 6237, pn.oid, pn.pnnspid, pn.xmin::text::bigint, '
            'pg_catalog.jsonb_build_object(''publication'', pn.pnpubid, ''schema'', pn.pnnspid), '
            'NULL::text FROM pg_catalog.pg_publication_namespace AS pn' ELSE '' END]]
    LOOP
        v_query := pg_catalog.replace(v_query, v_part[1], v_part[2]);
    END LOOP;
    EXECUTE v_query INTO v_db, v_builtin;

    -- Once per cluster: roles, memberships, databases, tablespaces, role settings,
    -- parameter ACLs.
    IF v_version >= 160000 THEN
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   1261, m.oid, m.xmin::text::bigint,
                   pg_catalog.pg_get_userbyid(m.roleid) || ' to ' || pg_catalog.pg_get_userbyid(m.member),
                   pg_catalog.jsonb_build_array(m.roleid, m.member),
                   pg_catalog.jsonb_build_object(
                       'role', m.roleid, 'member', m.member, 'grantor', m.grantor,
                       'admin', m.admin_option,
                       'inherit', pg_catalog.to_jsonb(m) -> 'inherit_option',
                       'set', pg_catalog.to_jsonb(m) -> 'set_option'))
                 ORDER BY m.oid), '[]'::jsonb)
          INTO v_members
          FROM pg_catalog.pg_auth_members AS m;
    ELSE
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   1261, m.roleid::text || ':' || m.member::text, m.xmin::text::bigint,
                   pg_catalog.pg_get_userbyid(m.roleid) || ' to ' || pg_catalog.pg_get_userbyid(m.member),
                   pg_catalog.jsonb_build_array(m.roleid, m.member),
                   pg_catalog.jsonb_build_object(
                       'role', m.roleid, 'member', m.member, 'grantor', m.grantor,
                       'admin', m.admin_option))
                 ORDER BY m.roleid, m.member), '[]'::jsonb)
          INTO v_members
          FROM pg_catalog.pg_auth_members AS m;
    END IF;
    IF v_version >= 150000 THEN
        SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   6243, a.oid, a.xmin::text::bigint, a.parname, '[]'::jsonb,
                   pg_catalog.jsonb_build_object('name', a.parname, 'acl', a.paracl::text))
                 ORDER BY a.oid), '[]'::jsonb)
          INTO v_params
          FROM pg_catalog.pg_parameter_acl AS a;
    END IF;
    SELECT (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   1260, r.oid, r.xmin::text::bigint, r.rolname, '[]'::jsonb,
                   pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                       'name', r.rolname, 'superuser', r.rolsuper, 'inherit', r.rolinherit,
                       'create_role', r.rolcreaterole, 'create_db', r.rolcreatedb,
                       'login', r.rolcanlogin, 'replication', r.rolreplication,
                       'bypass_rls', r.rolbypassrls, 'connection_limit', r.rolconnlimit,
                       'valid_until', r.rolvaliduntil,
                       -- a hash of the password hash: a changed password is seen, never stored
                       'password', pg_catalog.left(pg_catalog.md5(r.rolpassword), 16))))
                 ORDER BY r.oid), '[]'::jsonb)
              FROM pg_catalog.pg_authid AS r)
        || v_members
        || (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   1262, d.oid, d.xmin::text::bigint, d.datname, '[]'::jsonb,
                   pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                       'name', d.datname, 'owner', d.datdba, 'encoding', d.encoding,
                       'collate', d.datcollate, 'ctype', d.datctype,
                       'template', d.datistemplate, 'allow_connections', d.datallowconn,
                       'connection_limit', d.datconnlimit, 'tablespace', d.dattablespace,
                       'acl', d.datacl::text,
                       'locale_provider', pg_catalog.to_jsonb(d) -> 'datlocprovider',
                       'icu_locale', pg_catalog.to_jsonb(d) -> 'daticulocale',
                       'locale', pg_catalog.to_jsonb(d) -> 'datlocale',
                       'icu_rules', pg_catalog.to_jsonb(d) -> 'daticurules',
                       'collation_version', pg_catalog.to_jsonb(d) -> 'datcollversion')))
                 ORDER BY d.oid), '[]'::jsonb)
              FROM pg_catalog.pg_database AS d)
        || (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   1213, s.oid, s.xmin::text::bigint, s.spcname, '[]'::jsonb,
                   pg_catalog.jsonb_build_object(
                       'name', s.spcname, 'owner', s.spcowner, 'acl', s.spcacl::text,
                       'options', s.spcoptions))
                 ORDER BY s.oid), '[]'::jsonb)
              FROM pg_catalog.pg_tablespace AS s)
        || (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                   2964, z.setdatabase::text || ':' || z.setrole::text, z.xmin::text::bigint,
                   coalesce((SELECT dd.datname::text FROM pg_catalog.pg_database AS dd
                              WHERE dd.oid = z.setdatabase), '*') || ' / '
                       || coalesce(pg_catalog.pg_get_userbyid(nullif(z.setrole, 0))::text, '*'),
                   pg_catalog.jsonb_build_array(z.setdatabase, z.setrole),
                   pg_catalog.jsonb_build_object(
                       'database', z.setdatabase, 'role', z.setrole, 'settings', z.setconfig))
                 ORDER BY z.setdatabase, z.setrole), '[]'::jsonb)
              FROM pg_catalog.pg_db_role_setting AS z)
        || v_params
      INTO v_cluster;

    v_digests := ARRAY[pg_catalog.md5(v_db::text), pg_catalog.md5(v_builtin::text),
                       pg_catalog.md5(v_cluster::text)];
    SELECT s.database_digest, s.builtin_digest, s.cluster_digest INTO v_prev
      FROM {schema}.catalog_snapshots AS s ORDER BY s.id DESC LIMIT 1;
    -- A restore of a dump sets the serial to the dumped database's value (pg_dump's
    -- setval), which can be behind this table's own rows: move it past them first.
    PERFORM setval('{schema}.catalog_snapshots_id_seq'::regclass, m.id)
       FROM (SELECT max(s.id) AS id FROM {schema}.catalog_snapshots AS s) AS m,
            {schema}.catalog_snapshots_id_seq AS q
      WHERE m.id >= CASE WHEN q.is_called THEN q.last_value + 1 ELSE q.last_value END;
    INSERT INTO {schema}.catalog_snapshots (
        taken_at, reason, taken_by, database_name, server_version_num, xid_snapshot,
        oldest_xact_start, database_digest, builtin_digest, cluster_digest,
        database_objects, builtin_objects, cluster_objects, catalogs)
    VALUES (
        statement_timestamp(), p_reason, session_user, current_database(), v_version,
        pg_current_snapshot()::text,
        (SELECT min(a.xact_start) FROM pg_catalog.pg_stat_activity AS a
          WHERE a.backend_xid IS NOT NULL OR a.backend_xmin IS NOT NULL),
        v_digests[1], v_digests[2], v_digests[3],
        CASE WHEN v_prev.database_digest IS DISTINCT FROM v_digests[1] THEN v_db END,
        CASE WHEN v_prev.builtin_digest IS DISTINCT FROM v_digests[2] THEN v_builtin END,
        CASE WHEN v_prev.cluster_digest IS DISTINCT FROM v_digests[3] THEN v_cluster END,
        ARRAY[1259, 1255, 2617, 1247, 2606, 2620, 3466, 2615, 3079, 3256, 2618, 1260, 1261,
              1262, 1213, 2964, 6243, 6104, 6106, 6237, 6100, 826, 2328, 1417, 1418, 2605,
              2612])
    RETURNING id INTO v_id;
    -- A line in the server log at the snapshot's time: the logs read by reconcile then
    -- reach the end of the interval even when nothing else was logged since.
    RAISE LOG 'auditor-catalog-snapshot v1 schema=% id=% database=%',
        {schema_name}, v_id, current_database();
    RETURN v_id;
END
$auditor$;
REVOKE ALL ON FUNCTION {schema}.catalog_snapshot(text) FROM PUBLIC;
