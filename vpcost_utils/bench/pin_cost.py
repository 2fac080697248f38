"""Section 7 of the bench: what the arithmetic pin (``cpu_pin.py``) costs against the machine's own best kernels.

Each side runs in a fresh process, because PyTorch, MKL and oneDNN read their instruction-set setting once, at their
first kernel: ``VPCOST_ARITHMETIC=native`` (no pin) and the pin asked for (default ``avx2``). Per phase, CPU seconds
per image (process time, so a machine shared with other jobs still gives comparable numbers; the wall clock is
printed beside): the linear probe's feature pass (forward at the canvas), the VP training step (forward and
input-gradient backward through a padded prompt) and the ILM mapping pass (forward through the prompt).
"""

from __future__ import annotations

import time

from .common import emit, emit_ratio, fresh_process_sides, note


def _child(model_name: str | None, arch: str, input_size: int, batch: int, rounds: int) -> dict[str, float | str]:
    import torch
    import torch.nn.functional as F

    from .. import arithmetic
    from ..vp.visual_prompts import ExpansivePrompt
    from .common import load_model, our_backbone

    torch.set_num_threads(arithmetic.run_threads())
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = load_model(model_name, arch, device)
    backbone = our_backbone(model, device)
    canvas = model.canvas_size
    full = torch.rand(batch, 3, canvas, canvas).contiguous(memory_format=torch.channels_last)
    small = torch.rand(batch, 3, input_size, input_size)
    labels = torch.randint(0, 10, (batch,))
    prompt = ExpansivePrompt(canvas, input_size, model.mean, model.std).to(device)
    optimizer = torch.optim.Adam(prompt.parameters(), lr=0.01)

    def feature_pass():
        with torch.no_grad():
            backbone(full)

    def vp_step():
        loss = F.cross_entropy(backbone(prompt(small))[:, :10], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def mapping_pass():
        with torch.no_grad():
            backbone(prompt(small))

    out: dict[str, float | str] = {"key": arithmetic.arithmetic_key()}
    for name, fn in (("feature pass", feature_pass), ("VP step", vp_step), ("mapping pass", mapping_pass)):
        fn()  # warm-up: oneDNN builds its kernels on first use
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(rounds):
            fn()
        out[f"{name} cpu ms/img"] = 1000 * (time.process_time() - cpu) / (rounds * batch)
        out[f"{name} wall ms/img"] = 1000 * (time.perf_counter() - wall) / (rounds * batch)
    return out


def pin_cost_lines(model_name: str | None, arch: str, input_size: int, batch: int, rounds: int) -> dict[str, dict]:
    """Both sides, each in a fresh process; prints every phase and the pinned / native ratios."""
    from ..cpu_pin import requested

    pin = requested() if requested() != "native" else "avx2"
    note(f"arithmetic pin: {rounds} rounds of {batch} images per phase, native and {pin}, each in a fresh process")
    sides = fresh_process_sides("pin_cost", [model_name, arch, input_size, batch, rounds], "VPCOST_ARITHMETIC",
                                ("native", pin))
    for mode, side in sides.items():
        note(f"{mode}: arithmetic key {side['key']}")
    lines = {mode: {k: emit(f"pin {mode} {k}", v) for k, v in side.items() if k != "key"}
             for mode, side in sides.items()}
    for measure in lines["native"]:
        if "cpu" in measure:
            emit_ratio(f"pin {pin} vs native {measure}", (f"pin {pin} {measure}", lines[pin][measure]),
                       (f"pin native {measure}", lines["native"][measure]))
    return sides
