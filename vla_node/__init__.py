"""vla_node: vision-language-action control with asynchronous action chunks and a safety layer."""
