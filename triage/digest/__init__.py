"""The weekly digest mail per team: what came in, what is open, what waits longest, and which
topics are rising. Pure maths in `weeks` and `topics`, the reads in `content`, the run (one
digest per team and ISO week, through the outbox) in `run`."""
