"""The fraud estimator: a scikit-learn pipeline over the declared features, and its knobs.

`build_pipeline(params, features)` is the use case's `model.factory`: it one-hot encodes the
declared `category` features (with their declared values, so an unseen category scores as
"none of them") and passes the numeric ones through (or log-scales them for the linear model).
"""

from __future__ import annotations

from typing import Literal

from typing import TYPE_CHECKING

import numpy as np
from pydantic import ConfigDict

from ml.config import TrainParams
from ml.usecase.contract import Column

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline


class ModelParams(TrainParams):
    """The `train` section of this use case's params.yaml."""

    model_config = ConfigDict(extra="forbid")  # a typo in params.yaml is an error, not a silent default

    model_type: Literal["hist_gradient_boosting", "logistic_regression"] = "hist_gradient_boosting"
    learning_rate: float = 0.1
    max_iter: int = 100
    max_depth: int | None = 4
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    C: float = 1.0


def build_pipeline(p: ModelParams, features: dict[str, Column]) -> Pipeline:
    # scikit-learn is imported here, not above: every task and DVC stage types `ModelParams`
    # when it reads params.yaml, and only the ones that build a model need scikit-learn (~1-3 s).
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    categorical = [name for name, col in features.items() if col.type == "category"]
    numeric_cols = [name for name in features if name not in categorical]
    categories = OneHotEncoder(categories=[list(features[c].values) for c in categorical], handle_unknown="ignore",
                               sparse_output=False)
    if p.model_type == "logistic_regression":
        numeric = Pipeline([("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one")), ("scale", StandardScaler())])
        model = LogisticRegression(C=p.C, max_iter=1000, random_state=p.random_state)
    else:
        numeric = "passthrough"
        model = HistGradientBoostingClassifier(
            learning_rate=p.learning_rate,
            max_iter=p.max_iter,
            max_depth=p.max_depth,
            max_leaf_nodes=p.max_leaf_nodes,
            min_samples_leaf=p.min_samples_leaf,
            l2_regularization=p.l2_regularization,
            early_stopping=False,
            random_state=p.random_state,
        )
    transform = ColumnTransformer(
        [("category", categories, categorical), ("numeric", numeric, numeric_cols)],
        verbose_feature_names_out=False,
    )
    return Pipeline([("features", transform), ("model", model)])
