"""Teachers: ontology span rulers (and, later, LLMs) that label notes into their own span groups."""
