"""The vocabulary of an audit: taxonomy, slicing dimensions, text folding and the words readers see."""
