"""Evaluation: BSSEval v4 metrics, reports, real data sets and scoring a model on them."""
