"""`python -m simulations.cli ...`: the `fedvault` command."""

from simulations.cli.app import main

if __name__ == "__main__":
    main()
