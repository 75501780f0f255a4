"""A small shop app: its migrations are the Django workload's own DDL."""
