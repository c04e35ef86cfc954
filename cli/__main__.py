"""`python -m cli …` runs the same app as the `chromatic` script (e.g. from a checkout without installing)."""

from cli import app

app(prog_name="chromatic")
