-- mail_plpython_users.sql: what else uses plpython3u here (install only drops the language it created, when unused).
--
-- Functions written in it outside the audit schema, and extensions that require it
-- (hstore_plpython3u, ...).  Parameter: %(schema)s.
SELECT (SELECT pg_catalog.count(*)
          FROM pg_catalog.pg_proc AS p
          JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
          JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
         WHERE l.lanname = 'plpython3u' AND n.nspname <> %(schema)s)
     + (SELECT pg_catalog.count(*)
          FROM pg_catalog.pg_depend AS d
          JOIN pg_catalog.pg_extension AS x ON x.oid = d.refobjid
         WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND d.classid = 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND x.extname = 'plpython3u') AS users;
