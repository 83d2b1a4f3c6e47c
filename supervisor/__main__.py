"""`python -m supervisor` runs the same CLI as the sm-entry binary."""

from supervisor.cli import main

if __name__ == "__main__":
    main()
