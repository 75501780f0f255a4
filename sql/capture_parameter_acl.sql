-- capture_parameter_acl.sql: SET and ALTER SYSTEM privileges on parameters held by non-superusers.
--
-- PostgreSQL 15+ (pg_parameter_acl; auditor.capture does not run it on older servers).
-- GRANT SET ON PARAMETER log_statement TO r lets r run SET log_statement = 'none'
-- (which is itself not logged) without being a superuser; GRANT ALTER SYSTEM ON
-- PARAMETER lets r rewrite the server's logging configuration.  auditor.capture keeps
-- the parameters that decide what the two channels see.
SELECT p.parname::text AS parameter,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END
           AS grantee,
       a.privilege_type AS privilege
  FROM pg_catalog.pg_parameter_acl AS p
 CROSS JOIN LATERAL pg_catalog.aclexplode(p.paracl) AS a
  LEFT JOIN pg_catalog.pg_roles AS r ON r.oid = a.grantee
 WHERE NOT coalesce(r.rolsuper, false)
 ORDER BY 1, 2, 3;
