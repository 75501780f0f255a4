-- capture_reader_role.sql: state of a reader role: exists, created by auditor (its comment), still granted somewhere.
-- Parameters: %(role)s the role name, %(comment)s the comment install writes.
SELECT r.oid IS NOT NULL AS exists,
       coalesce(pg_catalog.shobj_description(r.oid, 'pg_authid') = %(comment)s, false) AS ours,
       (SELECT pg_catalog.count(*) FROM pg_catalog.pg_shdepend AS s
         WHERE s.refclassid = 'pg_catalog.pg_authid'::regclass AND s.refobjid = r.oid) AS dependencies
  FROM (SELECT %(role)s::text AS name) AS want
  LEFT JOIN pg_catalog.pg_roles AS r ON r.rolname = want.name;
