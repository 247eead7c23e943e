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
