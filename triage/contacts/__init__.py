"""The pure parts of the address book: duplicate detection and the CSV/vCard mapping.
No database here; `triage.desk.contacts` and its neighbours do the reading and writing."""
