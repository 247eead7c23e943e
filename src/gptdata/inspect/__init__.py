"""Stage 6, seeing it: a source in, what the model will see out, before any training.

``pairs``: ``context ----> desired`` pairs and window tables, in IDs and text, and a model's
predictions for them; ``plan``: windows, batches and stride coverage of a whole source, and its plot;
``instructions``: an instruction example as the model sees it, prompt and response marked.
"""
