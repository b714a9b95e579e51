"""What an operator sees of a running worker: its metrics (metrics.py), the database readings behind
them and the readiness check (readings.py), and the HTTP endpoint serving both (http.py)."""
