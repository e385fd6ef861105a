"""Kind `labelled_traffic`: the requests an endpoint answered, joined with the labels that came back.

`path` is the endpoint's inference table (`{storage}/tables/inference`, or `…/<endpoint>` of a
named one); the labels feed next to it (`ml.monitoring.tables.labels_dir`) is joined by request id
(or entity + event time), checked as monitoring checks it. The rows come out in the use case's raw
schema (`ml.monitoring.training_window.labelled_traffic`), so a scheduled retrain can learn from
production traffic with `window: {days: N}` keeping its recent part. A drift-triggered retrain gets
the same rows as a file from `retraining_job`'s `fresh_window` task instead.
"""

from __future__ import annotations

from pathlib import Path

from ml.data.sources.base import SourceError, SourceKind, locate


class LabelledTraffic(SourceKind):
    name = "labelled_traffic"
    needs = ("path",)
    allows = ("window",)

    def read(self, uc, spec, where):
        from core.errors import ConveyorError
        from ml.monitoring import tables
        from ml.monitoring.training_window import labelled_traffic
        from ml.serving.inference_log import read_table

        location = locate(spec.path, where)
        if "://" in location:
            raise SourceError(f"labelled traffic {location}: the inference table is read from a local directory")
        table_dir = Path(location)
        if not table_dir.is_dir():
            raise SourceError(f"labelled traffic {location}: no inference table there")
        feed = tables.labels_dir(table_dir)
        try:
            table = read_table(table_dir)
            labels = tables.joined_labels(feed, table, uc)
            frame = labelled_traffic(uc, table, labels)
        except ConveyorError as exc:  # a feed that cannot be joined: the source's error, one line
            raise SourceError(f"labelled traffic {location}: {exc}") from None
        manifest = {"kind": self.name, "location": location, "labels_feed": str(feed),
                    "requests_logged": len(table), "labels": len(labels)}
        return frame, f"labelled traffic {location} ({len(frame)} labelled requests)", manifest
