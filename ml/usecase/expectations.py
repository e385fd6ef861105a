"""Great Expectations 1.x suites derived from a use case's declaration.

Why two suites: the raw suite catches what a source sends wrong (schema, nulls, values out
of their declared range or set, duplicate ids, label rate); the feature suite guards the
training contract (the gold table's columns, feature ranges, values and types) so a bug in
feature code is caught before a model learns from it. The rules, per declared column:

| declared | raw suite (`dataset.columns`) | feature suite (`features.columns`) |
|---|---|---|
| the column set | exact match | keys + features + label, exact match |
| `id`, `unique: true` | values unique | |
| `min` / `max` (`strict_*`) | values between | values between |
| `values` (label: [0, 1] by default for classification) | values in set | values in set |
| type `int` / `float` | | dtype int64 / float64 |
| not `nullable` | not null (`mostly` 1 - `max_null_fraction`) | not null |
| binary classification label | mean within `min/max_label_rate` | mean within `min/max_label_rate` |

plus the row count (`data_validation.min/max_rows`) in both, and whatever the use case's own
`expectations` function adds (`function(kind, data_validation_params) -> [expectation, ...]`).
"""

from __future__ import annotations

from ml.config import DataValidationParams
from ml.usecase.contract import Column
from ml.usecase.usecase import UseCase


def _value_checks(gxe, name: str, col: Column, values: list | None = None) -> list:
    out = []
    if col.min is not None or col.max is not None:
        out.append(gxe.ExpectColumnValuesToBeBetween(column=name, min_value=col.min, max_value=col.max,
                                                     strict_min=col.strict_min, strict_max=col.strict_max))
    values = values if values is not None else col.values
    if values is not None:
        out.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(values)))
    return out


def _label_rate(gxe, uc: UseCase, p: DataValidationParams) -> list:
    if not uc.is_classification:
        return []
    return [gxe.ExpectColumnMeanToBeBetween(column=uc.label, min_value=p.min_label_rate, max_value=p.max_label_rate)]


def raw_expectations(uc: UseCase, p: DataValidationParams) -> list:
    import great_expectations.expectations as gxe

    columns = uc.spec.dataset.columns
    exps = [
        gxe.ExpectTableColumnsToMatchSet(column_set=uc.raw_columns, exact_match=True),
        gxe.ExpectTableRowCountToBeBetween(min_value=p.min_rows, max_value=p.max_rows),
    ]
    for name in dict.fromkeys([uc.id_column, *(n for n, c in columns.items() if c.unique)]):
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=name))
    for name, col in columns.items():
        if name != uc.label:
            exps += _value_checks(gxe, name, col)
    exps += _value_checks(gxe, uc.label, columns[uc.label], uc.label_values)
    exps += _label_rate(gxe, uc, p)
    mostly = 1.0 - p.max_null_fraction
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=n, mostly=mostly) for n, c in columns.items() if not c.nullable]
    return exps + uc.custom_expectations("raw", p)


def feature_expectations(uc: UseCase, p: DataValidationParams) -> list:
    import great_expectations.expectations as gxe

    features = uc.spec.features.columns
    exps = [
        gxe.ExpectTableColumnsToMatchSet(column_set=uc.gold_columns, exact_match=True),
        gxe.ExpectTableRowCountToBeBetween(min_value=p.min_rows, max_value=p.max_rows),
    ]
    for name, col in features.items():
        exps += _value_checks(gxe, name, col)
        if col.type in ("int", "float"):
            exps.append(gxe.ExpectColumnValuesToBeOfType(column=name, type_=f"{col.type}64"))
    exps += _label_rate(gxe, uc, p)
    not_null = [n for n, c in features.items() if not c.nullable] + [uc.label]
    exps += [gxe.ExpectColumnValuesToNotBeNull(column=n) for n in not_null]
    return exps + uc.custom_expectations("features", p)
