"""Model: which CLIP model an index uses, where it runs, and texts and images to vectors.

The model's identity and its precedence (`identity`), devices (`devices`), its weights: there or
not, loaded, or random for the demo and tests (`weights`), the open_clip model loaded once per
process (`encoder`), its ONNX towers that run without torch (`towers`, `image_tower`,
`text_tower`, `int8`), the one rule for encoding texts (`texts`) and the check that lets int8 into
an index (`precision`). Never imports the add pipeline or the front door (`index.py`).
"""
