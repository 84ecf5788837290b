"""Renderers: turn views into text/JSON/HTML. They never read the OS."""
