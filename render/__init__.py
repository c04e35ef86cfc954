"""How `chromatic` shows results: rich tables or JSON, lines and progress bars for the `cli` commands.

Kept apart from `cli` so that the typer app stays a list of thin commands; this
package never imports typer. Each `print_*(..., as_json=...)` writes either JSON or
tables to stdout; progress and warnings go to stderr (`err_console`) so that
`--json` output stays machine-readable. One module per command group, as in `cli`;
commands call `render.print_*` by these names.
"""

from render.base import (  # noqa: F401
    console,
    err_console,
    print_json,
    rich_table,
    counting_progress,
    encode_progress,
)
from render.data import (  # noqa: F401
    print_synth_summary,
    print_ingest_summary,
    print_optimize,
    print_doctor,
    print_info,
    print_coalesced,
    print_encode_result,
    print_encode_summary,
    print_versions,
)
from render.training import (  # noqa: F401
    CompareProgress,
    print_epoch,
    print_train_result,
    print_fold_results,
    print_fold_summary,
    warn_moved_tables,
    print_eval_result,
    print_eval_folds,
    print_compare,
)
from render.scoring import (  # noqa: F401
    print_export,
    print_scores,
    print_embed,
    print_neighbors,
    print_index,
    print_inspect,
    print_demo,
    print_frame,
    print_written,
    print_explorer_url,
)
