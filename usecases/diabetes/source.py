"""The diabetes use case's source: the 442 patients of scikit-learn's bundled diabetes dataset.

The data ship inside the scikit-learn package (`sklearn/datasets/data/diabetes_*.csv.gz`), so
ingest reads them from disk: nothing is generated and nothing is downloaded. The columns get
the names of the dataset's description (s1…s6 are tc, ldl, hdl, tch, ltg, glu), values stay
in their original units (`scaled=False`), and `patient_id` numbers the rows in the order the
dataset lists them, which is all the dataset says about who a row is.
"""

from __future__ import annotations

import pandas as pd

RENAMED = {"s1": "tc", "s2": "ldl", "s3": "hdl", "s4": "tch", "s5": "ltg", "s6": "glu", "target": "progression"}
ROWS = 442


def load_patients(rows: int | None = None, seed: int = 42) -> pd.DataFrame:
    """The raw rows (usecase.yml `dataset.columns`, in order): every patient, or a seeded sample
    of `rows` of them (`data.rows` in params.yaml; at most the 442 there are)."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.rename(columns=RENAMED)
    frame.insert(0, "patient_id", [f"p{i:03d}" for i in range(len(frame))])
    frame["age"] = frame["age"].astype("int64")
    frame["sex"] = frame["sex"].astype("int64")
    if rows is not None and rows < len(frame):
        frame = frame.sample(n=rows, random_state=seed).sort_index()
    return frame.reset_index(drop=True)
