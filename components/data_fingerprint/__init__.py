"""The data's fingerprint as a run parameter: what lets Kubeflow Pipelines' cache tell a
scheduled run with new files from one without.

KFP keys its cache by a task's input artifacts (their MLMD ids), parameters, image and
command, never by the files a task reads. ImageExampleGen reads `data_root`, so on a
cluster a small uncached task fingerprints what it holds, and ImageExampleGen and the
blessing gate's baseline get that fingerprint as a parameter: unchanged files, the same
parameters, and every task after the fingerprint is served from KFP's cache.

- `fingerprint.py`: the fingerprint of the files ImageExampleGen would ingest.
- `component.py`: the TFX component (its spec and executor) that writes it as a String
  output, and how a consumer takes it as an execution parameter.
"""
