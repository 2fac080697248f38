import numpy as np
import pytest
import torch

from vpcost_utils.config import BATCH_SIZE_BY_SHOTS, RunSpec, batch_size_for
from vpcost_utils.data import sample_n_shots
from vpcost_utils.errors import SpecError, UnknownNameError
from vpcost_utils.vp.visual_prompts import ExpansivePrompt

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_zero_theta_prompt_is_a_grey_frame_around_the_unscaled_image():
    prompt = ExpansivePrompt(canvas=8, input_size=4, mean=MEAN, std=STD)
    image = torch.rand(1, 3, 4, 4)
    out = prompt(image)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    assert out.shape == (1, 3, 8, 8)
    assert torch.allclose(out[0, :, 2:6, 2:6], (image[0] - mean) / std)
    frame = torch.ones(8, 8, dtype=torch.bool)
    frame[2:6, 2:6] = False
    grey = ((0.5 - mean) / std).expand(3, 8, 8)
    assert torch.allclose(out[0][:, frame], grey[:, frame])


def test_known_theta_and_odd_padding_split():
    prompt = ExpansivePrompt(canvas=7, input_size=4, mean=(0, 0, 0), std=(1, 1, 1))
    assert prompt.pad_before == 2  # int((7 - 4 + 1) / 2), the reference's left/top pad
    with torch.no_grad():
        prompt.theta.fill_(2.0)
    out = prompt(torch.zeros(1, 3, 4, 4))
    s = torch.sigmoid(torch.tensor(2.0))
    assert torch.allclose(out[0, :, 0, 0], s.expand(3)) and torch.allclose(out[0, :, 6, 6], s.expand(3))
    assert torch.all(out[0, :, 2:6, 2:6] == 0)  # the image region is never prompted
    assert prompt.mask.sum() == 49 - 16


def test_only_border_gets_gradient():
    prompt = ExpansivePrompt(canvas=8, input_size=4, mean=MEAN, std=STD)
    prompt(torch.rand(2, 3, 4, 4)).sum().backward()
    assert torch.all(prompt.theta.grad[:, 2:6, 2:6] == 0) and torch.all(prompt.theta.grad[:, 0, :] != 0)


def test_n_shot_sampler_is_balanced_deterministic_and_reference_order():
    labels = torch.tensor([0, 1, 2] * 10 + [2] * 5)
    a = sample_n_shots(labels, 3, seed=4)
    assert torch.bincount(labels[a]).tolist() == [3, 3, 3]
    assert a.tolist() == sample_n_shots(labels, 3, seed=4).tolist()
    assert a.tolist() != sample_n_shots(labels, 3, seed=5).tolist()
    # reference: per class shuffle with the seeded numpy RNG, first N, then shuffle the concatenation
    rng = np.random.RandomState(4)
    parts = []
    for c in range(3):
        idx = np.flatnonzero(labels.numpy() == c)
        rng.shuffle(idx)
        parts.append(idx[:3])
    expected = np.concatenate(parts)
    rng.shuffle(expected)
    assert a.tolist() == expected.tolist()


def test_n_shot_takes_all_when_a_class_is_small_and_none_is_full():
    labels = torch.tensor([0] * 2 + [1] * 10)
    assert torch.bincount(labels[sample_n_shots(labels, 5, 0)]).tolist() == [2, 5]
    assert sample_n_shots(labels, None, 0).tolist() == list(range(12))


def test_batch_size_table_is_the_papers_table5():
    assert BATCH_SIZE_BY_SHOTS == {1: 8, 2: 8, 5: 16, 10: 32, 20: 32, 50: 64, 100: 128, None: 128}
    assert batch_size_for(3) == 8 and batch_size_for(None) == 128
    assert RunSpec("m/x", "d", n_shots=50).effective_batch_size == 64


def test_runspec_validates_and_hashes_canonically():
    a = RunSpec("smallcnn/dense", "digits", n_shots=5)
    assert a.run_id == RunSpec.from_dict(a.to_dict()).run_id
    assert a.run_id != a.replace(seed=1).run_id and len(a.run_id) == 12
    with pytest.raises(UnknownNameError, match="ilm"):
        RunSpec("m/x", "d", method="ILM")
    with pytest.raises(SpecError, match="n_shots"):
        RunSpec("m/x", "d", n_shots=0)
    with pytest.raises(SpecError, match="epochs"):
        RunSpec("m/x", "d", epochs="10")
    with pytest.raises(SpecError, match="unknown RunSpec fields"):
        RunSpec.from_dict({"model": "m/x", "dataset": "d", "lr_rate": 1})
