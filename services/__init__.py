"""Use cases, one module per business noun. Functions take a Session and plain values and never commit."""
