-- capture_owner_settable.sql: which of some superuser-only settings a role may still SET.
--
-- PostgreSQL 15+ (GRANT SET ON PARAMETER; auditor.capture does not run it on older
-- servers, where only a superuser may set them).  A function's SET clauses are applied
-- as its owner at each call: a setting the owner may not set makes every call fail
-- with "permission denied to set parameter", before the function's body runs.
-- Parameters: %(role)s the owner's name, %(settings)s the settings' names (text[]).
SELECT s.name
  FROM pg_catalog.unnest(%(settings)s::text[]) AS s(name)
 WHERE pg_catalog.has_parameter_privilege(%(role)s::name, s.name, 'SET');
