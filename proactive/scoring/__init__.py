"""Risk scoring: point-in-time labels, training, calibration, registry, scoring, pipeline."""

import os

# XGBoost's OpenMP threads spin while they wait by default; on a shared machine with more busy
# processes than cores that made each boosting round ~3x slower (measured 0.38 vs 0.13 s).
# Set before any submodule imports xgboost.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
