"""`python -m numbre` runs the command line."""

from numbre.cli import main

if __name__ == "__main__":
    main()
