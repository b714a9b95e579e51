"""Reports for the liaison and staff: what the desk's tables say about volume, first responses,
overdue and waiting tickets, and routing (issue 13).

`queries` reads grouped rows from the database (SQL does the heavy grouping), `maths` turns them
into the tables (pure), `charts` draws them with matplotlib, `tables` writes them as CSV. The use
case that applies the role rules is `triage.desk.reports`.
"""
