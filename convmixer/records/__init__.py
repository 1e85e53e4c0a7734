"""The run folder: its files, its states, its lock and its provenance. The only code that knows them.

A run folder ``RESULTS/runs/<run id>/`` is complete exactly when ``metrics.json``
exists with status "completed" and passes :func:`validate_record`; it is
written last, by rename, so an interrupted run never leaves a record that
looks complete.

  files       file names, atomic writes, one-line write errors
  provenance  code commit, library versions, device, portable paths
  locks       the per-run lock (one trainer per run, across processes and machines)
  metrics     metrics.json's fields, declared once
  state       validating a record, tidying leftovers, moving corrupt records aside
  record      RunRecord: one run folder, read and written through one type
"""

from .files import (
    CHECKPOINT_DIR,
    CHECKPOINT_STATE,
    ERROR,
    HISTORY,
    METRICS,
    NOTEBOOK,
    PARAMS,
    PREDICTIONS,
    WEIGHTS,
    WriteError,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    dumps_json,
    folder_problem,
    read_json,
    temp_path_for,
    write_error,
)
from .locks import (
    LOCK_STALE_AFTER,
    RunLock,
    RunLocked,
    hostname,
    _process_start,
    acquire_lock,
    describe_owner,
    end_orphans,
    format_age,
    lock_abandoned,
    lock_age,
    lock_holder,
    lock_is_stale,
    lock_orphaned,
    lock_path,
    read_lock,
    take_over_stale_lock,
)
from .metrics import METRIC_COLUMNS, METRIC_FIELDS, METRIC_NAMES, MetricField, check_metrics_fields
from .record import RunRecord
from .provenance import (ALLOW_DIRTY_ENV, REPOSITORY, cpu_name, default_results_dir, device_description, git_commit, library_versions,
                         portable_path)
from .state import (
    PREDICTION_ARRAYS,
    RecordState,
    make_record_portable,
    move_aside,
    partial_notebook,
    previous_record_dir,
    portable_text,
    tidy_completed,
    validate_record,
)

__all__ = [
    "ALLOW_DIRTY_ENV",
    "METRIC_COLUMNS",
    "METRIC_FIELDS",
    "METRIC_NAMES",
    "MetricField",
    "check_metrics_fields",
    "CHECKPOINT_DIR",
    "CHECKPOINT_STATE",
    "ERROR",
    "HISTORY",
    "METRICS",
    "NOTEBOOK",
    "PARAMS",
    "PREDICTIONS",
    "WEIGHTS",
    "WriteError",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "dumps_json",
    "folder_problem",
    "read_json",
    "temp_path_for",
    "write_error",
    "LOCK_STALE_AFTER",
    "RunLock",
    "RunLocked",
    "hostname",
    "_process_start",
    "acquire_lock",
    "describe_owner",
    "end_orphans",
    "format_age",
    "lock_abandoned",
    "lock_age",
    "lock_holder",
    "lock_is_stale",
    "lock_orphaned",
    "lock_path",
    "read_lock",
    "take_over_stale_lock",
    "PREDICTION_ARRAYS",
    "RunRecord",
    "REPOSITORY",
    "cpu_name",
    "default_results_dir",
    "device_description",
    "git_commit",
    "library_versions",
    "portable_path",
    "RecordState",
    "make_record_portable",
    "move_aside",
    "partial_notebook",
    "previous_record_dir",
    "portable_text",
    "tidy_completed",
    "validate_record",
]
