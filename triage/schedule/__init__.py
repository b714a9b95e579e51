"""Reminders and escalations: pure due-time maths (calendar, policy, due) and the run that sends them."""
