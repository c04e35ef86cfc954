"""`chromatic`: a thin typer app. Parse, build a config, call one library function, hand the result to render.

Only this package imports typer; how results look lives in `render`. `cli.app`
holds the app, the shared options and the error handling; each module beside
it registers one group of commands (imported here in the order `--help` lists
them). Heavy libraries are imported inside the commands, so `chromatic --help`
and a command's start-up import only what that command uses.
"""

from cli.app import app, given  # noqa: F401  (`chromatic = "cli:app"`; tests import both)
from cli import data, encoding, training, scoring, search  # noqa: F401,E402  (registers the commands)
