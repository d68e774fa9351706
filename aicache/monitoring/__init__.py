"""aicache.monitoring: events, the in-process recorder, persistence, API and dashboards."""
