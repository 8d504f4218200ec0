"""Evaluation: signal metrics, music metrics, the eval report and the speed bench."""
