"""Models: the layer grammar (`layers`), the cut encoder and its loading (`encoder`), and one adapter per
model family behind one protocol (`families/`).
"""
