"""Plain reference implementations the tests compare against."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class ReferenceDataset(Dataset):
    """The classic GPTDatasetV1 over IDs: two tensors per window, built up front."""

    def __init__(self, ids, max_length, stride):
        self.inputs, self.targets = [], []
        for i in range(0, len(ids) - max_length, stride):
            self.inputs.append(torch.tensor(ids[i : i + max_length]))
            self.targets.append(torch.tensor(ids[i + 1 : i + max_length + 1]))

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, k):
        return self.inputs[k], self.targets[k]


class ClassicGPTDatasetV1(Dataset):
    """The book's GPTDatasetV1 as printed: tiktoken-style encode, then two tensors per window."""

    def __init__(self, txt, tokenizer, max_length, stride):
        self.input_ids, self.target_ids = [], []
        token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(torch.tensor(token_ids[i : i + max_length]))
            self.target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


def classic_dataloader_v1(
    txt, tokenizer, batch_size=4, max_length=256, stride=128, shuffle=True, drop_last=True
):
    """The book's create_dataloader_v1 with the tokenizer passed in (no download in tests)."""
    from torch.utils.data import DataLoader

    dataset = ClassicGPTDatasetV1(txt, tokenizer, max_length, stride)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)


def joined(tok, texts: list[str]) -> list[int]:
    """Documents as a store split holds them: each encoded, end-of-text between them."""
    out: list[int] = []
    for t in texts:
        if out:
            out.append(tok.eot_id)
        out += tok.encode(t)
    return out


def eot_heavy_ids(eot_id: int = 50256) -> list[int]:
    """3,000 IDs, about 5 % of them end-of-text: many short documents per window."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, size=3000)
    ids[rng.random(3000) < 0.05] = eot_id
    return ids.tolist()
