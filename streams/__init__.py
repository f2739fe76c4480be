"""The Faust stream processor: score every transaction, learn from delayed labels."""
