"""How several workers share one database: leases with fencing tokens (PostgreSQL), one worker
only on SQLite, and the identity a worker signs its claims with."""
