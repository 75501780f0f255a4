-- capture_session.sql: who we are connected as, and where (install/uninstall/status pre-checks).
SELECT current_user::text AS role, r.rolsuper AS superuser, current_database()::text AS database,
       current_setting('server_version_num')::int AS server_version_num
  FROM pg_catalog.pg_roles AS r
 WHERE r.rolname = current_user;
