"""Fixation maps, saliency metrics, statistics and reports: pure maths on arrays."""
