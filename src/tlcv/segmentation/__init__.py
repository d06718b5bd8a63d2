"""Semantic segmentation: data layouts and checks (data), batches (loading), encoder + decoder
(model), loss (objective), pixel metrics (metrics), whole-image inference (inference) and the
evaluate / predict outputs (evaluate). The task is tasks/segmentation.py; the three transfer
kinds are strategies/segmentation.py."""
