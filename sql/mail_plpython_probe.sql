-- mail_plpython_probe.sql: can the server's Python run the in-database mail mode? (run and rolled back by install)
--
-- The sender (auditor/mailcore.py, embedded) needs Python 3.8 or later and Jinja2.
DO $auditor_probe$
import sys
if sys.version_info < (3, 8):
    plpy.error("the server's Python is %d.%d; the in-database mail mode needs 3.8 or later"
               % sys.version_info[:2])
try:
    import jinja2  # noqa: F401
except ImportError:
    plpy.error("the server's Python %d.%d has no Jinja2 module (on Debian, install "
               "python3-jinja2 on the database server)" % sys.version_info[:2])
$auditor_probe$ LANGUAGE plpython3u;
