"""Full-text search over the desk: tickets, messages, internal notes and contacts.

`kinds` says what is searchable and builds the index's DDL for each engine (SQLite FTS5 tables with
triggers, PostgreSQL tsvector columns with triggers and GIN indexes), `query` turns hostile user
input into a safe query and highlighted snippets into marked segments (pure), one backend per engine
runs the search, and `service` is the use case the CLI and the workbench call.
"""
