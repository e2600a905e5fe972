"""memory_node: recognise and remember people (face embeddings in a tiered, private memory)."""
