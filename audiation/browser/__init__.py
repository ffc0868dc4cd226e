"""The unit browser: one static `index.html` (`page`) with its style and scripts (`static/`).
"""
