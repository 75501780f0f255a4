"""``python -m auditor`` runs the same Typer application as the console script."""

from auditor.cli import main

if __name__ == "__main__":
    main()
