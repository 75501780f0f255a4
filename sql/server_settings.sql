-- server_settings.sql: the server settings that decide how much the log channel sees.
-- Used by install (warnings), status and reconcile (CONFIG_DRIFT), and by the log
-- readers to learn the prefix and destinations of a live server.
SELECT name, setting, source, pending_restart
FROM pg_catalog.pg_settings
WHERE name IN ('log_statement', 'log_destination', 'log_line_prefix', 'logging_collector',
               'log_directory', 'log_filename', 'log_timezone', 'lc_messages',
               'log_min_messages', 'log_min_error_statement', 'log_error_verbosity',
               'event_triggers',
               'data_directory', 'server_version_num', 'port', 'log_rotation_age',
               'log_rotation_size', 'log_truncate_on_rotation')
ORDER BY name;
