-- superuser_roles.sql: the roles that are superusers now.
--
-- Membership in one of them is superuser power (SET ROLE to it): reconcile judges
-- GRANT r TO x, CREATE ROLE x IN ROLE r and ALTER GROUP r ADD USER x as granting
-- superuser (UNAUDITABLE_DDL high) when r is one of these.
SELECT r.rolname FROM pg_catalog.pg_roles AS r WHERE r.rolsuper ORDER BY 1;
