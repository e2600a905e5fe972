"""The fuzz suite (docs/fuzz.md): every node of the stack, as a process, against malformed messages
on every topic it subscribes to and hostile requests to its services."""
