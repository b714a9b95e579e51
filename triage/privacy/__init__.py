"""Privacy: what the desk holds about one person (scope), a copy of it for them (export), its
erasure by request or by the retention period (erase, retention). Pure parts and queries here;
the use cases with their roles are in triage.desk.privacy."""
