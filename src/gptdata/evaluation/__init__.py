"""Stage 5, evaluation: a model and held-out text in, loss, perplexity and bits per byte out.

``scoring.evaluate`` scores any source read by the one reader (``prepare.load_tokens``) with lm-eval's
rolling windows and returns ``results.EvalResult``; ``models`` loads the model a user names
(``pyfile``: ``py:FILE.py:NAME``), ``baselines`` gives count models to compare with, ``compare``
the paired bootstrap between two results. Loads torch: nothing is imported here.
"""
