"""Section 5 of the bench: the same training in a fresh process under glibc's malloc defaults and with freed
memory kept (``allocator.py``); wall, system time and page faults of each, and their ratios.

Each side is its own child process, because the allocator is set once per process before the first large
allocation, as in a run. A child trains like a run's epochs: the ILM mapping pass and one training epoch on
``shots`` x 10 random images, ``epochs`` times, then one test pass, on ``VPCOST_RUN_THREADS`` threads.
"""

from __future__ import annotations

import resource
import time

from .common import emit, emit_ratio, fresh_process_sides, note


def _child(model_name: str | None, arch: str, input_size: int, shots: int, epochs: int, batch: int,
           test_images: int) -> dict[str, float | str]:
    from ..allocator import keep_freed_memory

    setting = keep_freed_memory()
    import torch

    from ..arithmetic import run_threads
    from ..vp import train_vp as vp
    from ..vp.visual_prompts import ExpansivePrompt
    from .common import load_model, our_backbone, random_split

    torch.set_num_threads(run_threads())
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = load_model(model_name, arch, device)
    backbone = our_backbone(model, device)
    train, test = random_split(10 * shots, input_size), random_split(test_images, input_size, seed=1)
    prompt = ExpansivePrompt(model.canvas_size, input_size, model.mean, model.std).to(device)
    optimizer = torch.optim.Adam(prompt.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(epochs):
        mapping = vp._frequency_mapping(backbone, prompt, train, device)
        vp.train_one_epoch(backbone, prompt, mapping, train, optimizer, batch, device, generator)
    vp.source_logits(backbone, prompt, test, device)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"setting": setting, "wall s": wall, "system s": after.ru_stime - before.ru_stime,
            "minor page faults": after.ru_minflt - before.ru_minflt, "max RSS MB": after.ru_maxrss / 1024}


def allocator_lines(model_name: str | None, arch: str, input_size: int, shots: int, epochs: int, batch: int,
                    test_images: int) -> dict[str, dict]:
    """Both sides, one after the other, each in a fresh process; prints every measure and its ratio."""
    note(f"allocator: {epochs} epochs of mapping + training on {10 * shots} images (batch {batch}) and a "
         f"{test_images}-image test pass, each side in a fresh process")
    sides = fresh_process_sides("allocator_bench", [model_name, arch, input_size, shots, epochs, batch, test_images],
                                "VPCOST_MALLOC", ("default", "keep"))
    for mode, side in sides.items():
        note(f"malloc {mode}: {side['setting']}")
    lines = {mode: {k: emit(f"malloc {mode} {k}", v) for k, v in side.items() if k != "setting"}
             for mode, side in sides.items()}
    for measure in ("wall s", "system s", "minor page faults", "max RSS MB"):
        emit_ratio(f"malloc keep vs default {measure}", (f"malloc keep {measure}", lines["keep"][measure]),
                   (f"malloc default {measure}", lines["default"][measure]))
    return sides
