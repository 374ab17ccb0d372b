"""Parses Prometheus text expositions with prometheus_client's own parser (not graced's code).

stdin: one or more expositions, each ended by a line "--- end ---". stdout: a JSON list,
one object per exposition: {"families": {name: type}, "samples": {"name{k=v,...}": value}}
(labels sorted by name). Any parse error exits non-zero with the parser's message.
"""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def parse(text):
    families, samples = {}, {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            key = f"{s.name}{{{labels}}}" if labels else s.name
            if key in samples:
                raise SystemExit(f"duplicate sample {key}")
            samples[key] = s.value
    return {"families": families, "samples": samples}


texts = sys.stdin.read().split("--- end ---\n")
print(json.dumps([parse(t) for t in texts if t.strip()]))
