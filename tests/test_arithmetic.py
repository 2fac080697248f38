"""Same spec, same answer: the runner, the worker count and the process's threads do not change a record."""

from __future__ import annotations

import json

import pytest
import torch

from vpcost_utils import allocator, arithmetic
from vpcost_utils.config import PROTOCOL, RunSpec
from vpcost_utils.errors import VpcostError
from vpcost_utils.running.store import ResultStore
from vpcost_utils.running.sweep import run_grid

SPEC = RunSpec("smallcnn/dense", "digits", n_shots=2, seed=3, epochs=2, eval_every=1, max_test=120)
SAME = ("metrics", "curves", "mapping_history", "test_predictions", "convergence", "arithmetic", "protocol")


def _record(store: ResultStore) -> dict:
    return json.loads(store.path(SPEC.run_id).read_text())


def test_one_spec_gives_bit_identical_records_on_every_runner_and_thread_count(tmp_path, monkeypatch):
    # The small CNN's arithmetic happens not to depend on the thread count (EfficientNet-Lite0's does: a 16-epoch
    # MNIST run moved by 4 points), so the pin itself is checked too: the loop sees one thread, whatever the
    # process had.
    from vpcost_utils.vp import train_vp as train

    seen_threads = []
    real_run_vp = train.run_vp
    monkeypatch.setattr(train, "run_vp", lambda *a, **k: (seen_threads.append(torch.get_num_threads()),
                                                          real_run_vp(*a, **k))[1])
    before = torch.get_num_threads()
    records = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)  # what the serial runner's process happens to have
            store = ResultStore(tmp_path / f"serial-{threads}")
            run_grid([SPEC], store, runner="serial", progress=False)
            records[f"serial, process on {threads} threads"] = _record(store)
            assert torch.get_num_threads() == threads  # the run's pin is undone afterwards
    finally:
        torch.set_num_threads(before)
    assert seen_threads == [1, 1]
    monkeypatch.setenv("VPCOST_WORKERS", "2")
    monkeypatch.setenv("VPCOST_MALLOC", "default")  # the workers keep glibc's malloc settings: nothing computed moves
    store = ResultStore(tmp_path / "processes")
    run_grid([SPEC, SPEC.replace(seed=4)], store, runner="processes", progress=False)
    records["process pool, 2 workers"] = _record(store)
    first = next(iter(records.values()))
    assert first["arithmetic"]["threads"] == 1 and first["protocol"] == PROTOCOL
    if allocator.on_glibc():
        assert first["env"]["malloc"].startswith("glibc: mmap_max=0")
        assert records["process pool, 2 workers"]["env"]["malloc"] == "glibc: defaults"
    for name, record in records.items():
        for key in SAME:
            assert record[key] == first[key], (name, key)


def test_a_record_of_another_protocol_thread_count_or_arithmetic_is_made_again(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    run_grid([SPEC], store, progress=False)
    assert store.has(SPEC) and store.stale(SPEC) is None
    record = _record(store)
    store.write({**record, "protocol": PROTOCOL - 1})
    assert not store.has(SPEC) and "protocol 1" in store.stale(SPEC)
    with pytest.warns(UserWarning, match="running it again"):
        result = run_grid([SPEC], store, progress=False)
    assert result.ran == 1 and _record(store)["protocol"] == PROTOCOL
    assert _record(store)["metrics"] == record["metrics"]  # the same code made it again: the same numbers
    monkeypatch.setenv(arithmetic.THREADS_ENV, "2")  # a 2-thread study must not reuse 1-thread records
    assert not store.has(SPEC) and "1 thread(s)" in store.stale(SPEC)
    monkeypatch.delenv(arithmetic.THREADS_ENV)
    assert store.stale(SPEC) is None
    # a record made under another arithmetic (another pin or processor), or before pins were recorded
    made = record["arithmetic"]
    assert made["key"] == arithmetic.arithmetic_key() and made["pin"] == "avx2" and made["pin_held"]
    assert made["cpu_model"] and made["cpu_kernels"] == "AVX2"
    store.write({**_record(store), "arithmetic": {**made, "key": "native-avx512-amd-epyc-other"}})
    assert not store.has(SPEC) and "native-avx512-amd-epyc-other" in store.stale(SPEC)
    store.write({**_record(store), "arithmetic": {"threads": 1, "cuda_deterministic": False, "cpu_kernels": "AVX2"}})
    assert "before arithmetic pins" in store.stale(SPEC)
    # a GPU run's record is not judged by the CPU's arithmetic
    store.write({**_record(store), "arithmetic": {"threads": 1, "cuda_deterministic": True, "cpu_kernels": None}})
    assert store.stale(SPEC) is None
    store.path(SPEC.run_id).write_text("{not json")
    assert "unreadable" in store.stale(SPEC)


def test_bad_thread_setting_is_named(monkeypatch):
    monkeypatch.setenv(arithmetic.THREADS_ENV, "two")
    with pytest.raises(VpcostError, match="VPCOST_RUN_THREADS='two' must be a positive integer"):
        arithmetic.run_threads()


def test_dense_and_compressed_runs_of_a_seed_share_sample_batches_and_prompt_start():
    """Common random numbers: the pair differs only in the backbone."""
    from vpcost_utils.vp import train_vp as train

    dense = RunSpec("smallcnn/dense", "digits", n_shots=3, seed=5, epochs=1, eval_every=1)
    sparse = dense.replace(model="smallcnn/prune-90")
    orders = []
    real = train.train_step

    def recording(backbone, prompt, mapping, split, index, *args, **kwargs):
        orders.append(index.tolist())
        return real(backbone, prompt, mapping, split, index, *args, **kwargs)

    (train_a, test_a), (train_b, test_b) = train.load_data(dense), train.load_data(sparse)
    assert torch.equal(train_a.images, train_b.images) and torch.equal(test_a.labels, test_b.labels)
    import unittest.mock

    with unittest.mock.patch.object(train, "train_step", recording):
        train.run_vp(dense, progress=False)
        a = list(orders)
        orders.clear()
        train.run_vp(sparse, progress=False)
    assert a and a == orders  # the same batches in the same order
    # the prompt starts at theta = 0 for every model: no random initialisation to share
    from vpcost_utils.vp.visual_prompts import ExpansivePrompt

    assert not ExpansivePrompt(64, 32, (0.5,) * 3, (0.5,) * 3).theta.any()


def test_sample_seed_changes_the_draw_alone():
    from vpcost_utils.vp import train_vp as train

    base = RunSpec("smallcnn/dense", "digits", n_shots=3, seed=0, epochs=1, eval_every=1)
    assert base.replace(sample_seed=0).run_id == base.run_id  # the same draw: the same run
    other = base.replace(sample_seed=1)
    assert other.run_id != base.run_id and other.data_seed == 1
    a, _ = train.load_data(base)
    b, _ = train.load_data(other)
    c, _ = train.load_data(base.replace(seed=7, sample_seed=1))
    assert not torch.equal(a.images, b.images) and torch.equal(b.images, c.images)


def test_every_vp_spec_field_in_the_run_id_changes_the_run():
    # max_steps once changed a VP run's id while the VP loop ignored it; the shared loop honours it now
    from vpcost_utils.loop import Schedule

    spec = RunSpec("smallcnn/dense", "digits", n_shots=2, max_steps=10)
    assert spec.run_id != spec.replace(max_steps=None).run_id
    assert Schedule.for_run(spec, 20).total_steps == 10 < Schedule.for_run(spec.replace(max_steps=None), 20).total_steps
    with pytest.raises(VpcostError, match="only applies to task='vp'"):
        RunSpec("smallcnn/dense", "synth_dna", task="crossmodal", method="max", precision="bf16")
