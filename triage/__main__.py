"""`python -m triage`. The import sits under the guard: parse workers are spawned, and a spawned
process imports the main module again, which must stay light."""

if __name__ == "__main__":
    from triage.cli import main

    main()
