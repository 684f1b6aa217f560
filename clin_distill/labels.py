"""The three target labels, shared by every reader, teacher and student."""

MEDICATION = "MEDICATION"
DISEASE = "DISEASE"
SYMPTOM = "SYMPTOM"
LABELS: tuple[str, ...] = (MEDICATION, DISEASE, SYMPTOM)

# Span group that readers fill with every gold mention, overlaps included.
GOLD_SPANS_KEY = "gold"
