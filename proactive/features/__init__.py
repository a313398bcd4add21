"""Feature definitions: the one place that knows what a metric means (model and playbooks both use it)."""
