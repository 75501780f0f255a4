-- capture_id_gaps.sql: stretches of audit ids between two bounds that no row of the table holds.
--
-- Ids come from the events sequence, one per firing.  Reconcile reads the rows of its
-- window only; this looks at the whole table (rows outside the window, or judged by an
-- earlier run, fill their ids), over the primary key alone.  Each result row is one
-- gap: the first and the last missing id.  Placeholder: {{schema}}.  Parameters:
-- %(low)s, %(high)s (inclusive bounds, both ids of rows that exist).
SELECT g.id + 1 AS first_id, g.next_id - 1 AS last_id
  FROM (SELECT e.id, pg_catalog.lead(e.id) OVER (ORDER BY e.id) AS next_id
          FROM {schema}.events AS e
         WHERE e.id BETWEEN %(low)s AND %(high)s) AS g
 WHERE g.next_id > g.id + 1
 ORDER BY 1;
