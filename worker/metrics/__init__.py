"""Supervisors' figures: definitions (pure), queries (SQL), the report (rows), Prometheus."""
