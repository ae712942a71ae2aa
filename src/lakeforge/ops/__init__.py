"""Running the pipeline: stages, run records, locking and progress."""
