import pytest
import torch

from vpcost_utils.errors import SpecError
from vpcost_utils.vp.label_mapping import frequency_mapping, frequency_matrix, greedy_one_to_one, random_mapping


def test_frequency_matrix_counts_hard_argmax_votes():
    logits = torch.tensor([[0.1, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 1.0, 0.9], [0.0, 0.0, 5.0]])
    targets = torch.tensor([0, 0, 1, 1])
    freq = frequency_matrix(logits, targets, num_targets=2)
    assert freq.shape == (3, 2)
    assert freq.tolist() == [[1, 0], [1, 1], [0, 1]]


def test_greedy_takes_global_max_and_removes_row_and_column():
    freq = torch.tensor([[1, 7, 0], [6, 8, 0], [5, 0, 2], [0, 0, 3]])
    # (1,1)=8 first; then row 1 / col 1 gone: (2,0)=5; then (3,2)=3.
    assert greedy_one_to_one(freq).tolist() == [2, 1, 3]


def test_greedy_ties_break_by_lowest_source_then_lowest_target():
    freq = torch.tensor([[2, 2], [2, 0], [0, 1]])
    # first maximum in row-major order is (0, 0); then column 1's best among rows 1, 2 is row 2.
    assert greedy_one_to_one(freq).tolist() == [0, 2]


def test_unvoted_targets_get_lowest_unused_sources_in_target_order():
    freq = torch.zeros(4, 3, dtype=torch.long)
    freq[1, 2] = 5
    assert greedy_one_to_one(freq).tolist() == [0, 2, 1]
    assert greedy_one_to_one(torch.zeros(5, 3, dtype=torch.long)).tolist() == [0, 1, 2]


def test_greedy_is_injective_on_random_counts():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        freq = torch.randint(0, 4, (30, 10), generator=g)
        mapping = greedy_one_to_one(freq)
        assert len(set(mapping.tolist())) == 10


def test_random_mapping_is_seeded_and_injective():
    a = random_mapping(100, 10, torch.Generator().manual_seed(3))
    b = random_mapping(100, 10, torch.Generator().manual_seed(3))
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 10
    assert a.tolist() == torch.randperm(100, generator=torch.Generator().manual_seed(3))[:10].tolist()
    with pytest.raises(SpecError):
        random_mapping(5, 6)


def test_frequency_mapping_sums_batches_and_requires_every_class():
    logits = torch.eye(4) * 3
    batches = [(torch.arange(2), torch.tensor([1, 0])), (torch.arange(2, 4), torch.tensor([2, 2]))]
    mapping, freq = frequency_mapping(lambda idx: logits[idx], batches, num_targets=3)
    assert freq.sum() == 4 and mapping.tolist() == [1, 0, 2]
    with pytest.raises(SpecError, match=r"\[2\]"):
        frequency_mapping(lambda idx: logits[idx], [(torch.arange(2), torch.tensor([1, 0]))], num_targets=3)
