"""`python -m supervisor` (and the frozen binary) run the same CLI as `sm-entry`."""

from supervisor.core.signals import hold_signals

hold_signals()  # before the slow imports: a signal now waits for our handlers

from supervisor.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
