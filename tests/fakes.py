"""Files of a hand-written run record that pass records.validate_record: the smallest real ones."""

from pathlib import Path


def write_weights(path) -> Path:
    """A Keras-shaped weights file: HDF5 with a ``layers`` group (what validate_record checks), no weights."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_group("layers")
        f.create_group("vars")
    return path


def write_history(path, epochs: int = 1, **columns) -> Path:
    """history.csv with epochs 1..``epochs`` and the given constant columns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["epoch", *columns]
    rows = [",".join(header)] + [",".join([str(e), *map(str, columns.values())]) for e in range(1, epochs + 1)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path
