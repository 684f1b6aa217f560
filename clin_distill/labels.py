"""The three target labels, shared by every reader, teacher and student."""

MEDICATION = "MEDICATION"
DISEASE = "DISEASE"
SYMPTOM = "SYMPTOM"
LABELS: tuple[str, ...] = (MEDICATION, DISEASE, SYMPTOM)

# Which labels each gold set annotates (BC5CDR has no SYMPTOM, NCBI only DISEASE): every score
# of a teacher, combination or student uses only these per set.
GOLD_LABELS: dict[str, tuple[str, ...]] = {
    "maccrobat": (MEDICATION, DISEASE, SYMPTOM),
    "bc5cdr": (MEDICATION, DISEASE),
    "ncbi": (DISEASE,),
}

# Span group that readers fill with every gold mention, overlaps included.
GOLD_SPANS_KEY = "gold"
