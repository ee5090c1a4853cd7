"""Assessment protocols, scoring, modality-aware results and trends, video goniometry."""
