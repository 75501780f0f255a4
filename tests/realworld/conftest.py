"""The Django project is data for the Django workload, imported by Django in a subprocess."""

collect_ignore = ["djangoapp"]
