"""Risk scoring: point-in-time labels, training, calibration, registry, scoring, pipeline."""
