"""metrics.json's fields, declared once: the training loop writes exactly these (``check_metrics_fields``),
a record's validation checks the kinds declared here, and the report's run table takes its columns from them.

A record written before a field existed simply lacks it: no field beyond ``status`` and
``test_accuracy`` is required of a record (``state._metrics_problem``).
"""

from __future__ import annotations

from typing import NamedTuple


class MetricField(NamedTuple):
    name: str
    # What validation checks when the field is present and not null: "real" (a finite number), "int" (an
    # integer, not a bool), "object" (a JSON object), "reals" (a list of finite numbers or nulls); None: not
    # checked. ``status`` and ``test_accuracy``
    # are checked on their own (a completed run, an accuracy in [0, 1]).
    kind: str | None
    # A column of the report's run table (report/runs.py), read as it is.
    column: bool = False


METRIC_FIELDS = (
    MetricField("status", None),
    MetricField("run_id", None),
    MetricField("test_accuracy", None, column=True),
    MetricField("test_loss", "real", column=True),
    MetricField("best_val_accuracy", "real", column=True),
    MetricField("selected_epoch", "int", column=True),
    MetricField("trainable_parameters", "int", column=True),
    MetricField("selection", None),
    MetricField("epochs", "int"),
    MetricField("train_images", "int", column=True),
    MetricField("val_images", "int", column=True),
    MetricField("test_images", "int", column=True),
    MetricField("seconds_per_epoch", "real", column=True),
    MetricField("images_per_second", "real", column=True),
    MetricField("total_train_seconds", "real", column=True),
    MetricField("device", "object"),
    MetricField("dataset", "object"),
    MetricField("versions", "object"),
    MetricField("speed", "object"),
    MetricField("git_commit", None, column=True),
    MetricField("resumed_with", None),
    MetricField("allow_dirty", None),
    MetricField("keras_weight_decay", None),
    MetricField("train_loop", None),
    MetricField("load_average", "reals"),
    MetricField("started", None, column=True),
    MetricField("finished", None, column=True),
)
# Inside metrics.json's objects, the fields the report reads, with the kind each must have when present and
# not null (others are free): a hand-edited or damaged value makes the record corrupt instead of breaking
# the report. "int" excludes bools, as above.
OBJECT_FIELDS = {
    "device": {"kind": "str", "name": "str", "backend": "str", "cpu_count": "int", "cpu_vector_extension": "str"},
    "dataset": {"description": "str", "fingerprint": "str", "source": "str", "lossy_jpeg": "bool"},
}
METRIC_NAMES = tuple(f.name for f in METRIC_FIELDS)
METRIC_COLUMNS = [f.name for f in METRIC_FIELDS if f.column]


def fields_of_kind(kind: str) -> tuple[str, ...]:
    return tuple(f.name for f in METRIC_FIELDS if f.kind == kind)


def check_metrics_fields(metrics: dict) -> dict:
    """``metrics`` as it is when it holds exactly the declared fields; else ValueError naming the difference."""
    missing = [name for name in METRIC_NAMES if name not in metrics]
    unknown = sorted(set(metrics) - set(METRIC_NAMES))
    if missing or unknown:
        raise ValueError(f"metrics.json's fields differ from records/metrics.py's METRIC_FIELDS: "
                         f"missing {missing}, undeclared {unknown}")
    return metrics
