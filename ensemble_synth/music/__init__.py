"""Music: the instrument catalogue, repertoire sources, scores and their performance."""
