"""Stage 4, windows: a store split (or any source) in, batches of (input, target) windows out.

``dataset.SlidingWindowDataset`` cuts windows lazily (``max_length``, ``stride``), ``documents``
adds document masks and positions, ``loader`` batches them (seeds, ranks, workers, exact resume)
and ``attention`` turns document IDs into attention masks. These modules load torch, so nothing is
imported here: ``import gptdata`` stays fast.
"""
