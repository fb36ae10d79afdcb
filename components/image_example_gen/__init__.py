"""ImageExampleGen: a folder of images per class -> tf.Example TFRecords, and a report
that accounts for every input file.

One job per module, in the order a file meets them:

- `layout.py`: the Kaggle layout rules: which files belong to which split and class,
  which are ignored, and the check of the folders before any file is read.
- `settings.py`: the check of the class names, and how the settings travel in
  ExampleGen's `custom_config`; `defaults.py`: the default limits alone (no imports),
  which the pipeline's config reads.
- `image_file.py`: reading and checking one image file: accepted, or rejected with a reason.
- `image_example.py`: the tf.Example of one accepted image.
- `beam_transform.py`: the Beam transform: file paths -> serialized tf.Examples, plus one
  outcome line per file for the report.
- `report.py`: the ingestion report, `ingestion_report.json`.
- `driver.py`: the TFX driver: which span to ingest (the newest complete one), and the
  input's fingerprint (TFX's cache key).
- `executor.py`: the TFX executor: checks the layout, runs the transform, writes the
  TFRecords and the report.
- `component.py`: the TFX component, `ImageExampleGen`.
"""
