"""Token datasets: the on-disk format (`format`), the writer (`tokenize`) and the training reader (`crops`)."""
