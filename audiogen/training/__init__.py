"""Training: the one loop (`loop`), the codec and LM tasks (`codec`, `lm`), codec losses and process groups."""
