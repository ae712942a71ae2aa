"""Machine learning in the pipeline: anomaly detection (``anomaly``, evaluated on NAB: ``nab``) and predictive
maintenance (remaining useful life on C-MAPSS: ``cmapss``). Heavy libraries (scikit-learn, LightGBM, MLflow)
are imported by the modules that need them, from the ``ml`` extra."""
