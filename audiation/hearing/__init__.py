"""What hears an audiation: the quality measures (`quality`), the judges built for human speech
(`judges`), phone names for units (`phones`), and every verdict beside its chance rate (`verdicts`).
"""
