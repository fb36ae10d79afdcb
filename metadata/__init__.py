"""What the pipeline's runs recorded, read back: ML Metadata (MLMD) and the Evaluator's
result files. Every reader of a run (the closing summary, `make history`, retraining, the
report, the benchmarks, the tests) goes through here.

- `store.py`: the MLMD store, opened read-only from its path, and the ways through it:
  runs, artifacts by type or by component, the executions that read and wrote them.
- `evaluation_results.py`: TFMA's eval config, metrics, plots and threshold checks, read
  from the files the Evaluator wrote, with TFMA's own generated proto modules.
- `tfrecords.py`: the records of a TFRecord file (TFMA's results, TensorBoard's logs).
- `eval_predictions.py`: the candidate's prediction for each eval example, as the
  Evaluator writes them beside TFMA's results.
- `runs.py`: what one run did (spans, blessing, metrics, push) and what its evaluation
  was made of.

None of it imports TensorFlow or TFMA's package (each takes seconds to import): a look at
the history, or a report, is as quick as the files it reads.
"""
