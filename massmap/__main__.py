"""``python -m massmap``: the command line (what batch jobs run, with the interpreter that submitted them)."""
from massmap.cli import main

if __name__ == "__main__":
    main()
