"""The HTML audit report a regulator reads alone, and its static charts."""
