"""Home exercise: the exercise library, versioned programmes, and the patient's daily check-ins."""
