"""Module paths of before the 2026-12 move keep working: ``python -m vpcost_utils.plan`` runs ``running.plan``.

``MOVED`` maps each old path (under ``vpcost_utils.``) to where the module lives now. ``install`` (run by
``import vpcost_utils``) puts a finder on ``sys.meta_path`` that answers for those old paths only:
``import vpcost_utils.plan`` gives the module ``vpcost_utils.running.plan`` itself (one object,
so a patch of either name patches both), and ``python -m vpcost_utils.plan ...`` says where the command
moved (on stderr) and runs it there with the same arguments. Code in the package uses the new paths
(``tests/test_layering.py`` refuses an old one).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys

PACKAGE = __name__.rpartition(".")[0]
#: old path -> new path, both under ``vpcost_utils.``
MOVED = {
    "train": "vp.train_vp", "mapping": "vp.label_mapping", "prompts": "vp.visual_prompts",
    "temperature": "vp.temperature", "intervals": "stats.intervals", "sequential": "stats.sequential",
    "runs": "running.runs", "store": "running.store", "sweep": "running.sweep", "preflight": "running.preflight",
    "plan": "running.plan", "mini_files": "running.mini_files", "noise_study": "studies.noise_study",
    "verdict_study": "studies.verdict_study", "agreement_study": "studies.agreement_study",
    "kill_resume": "studies.kill_resume", "rehearsal.plan": "rehearsal.thinning", "rehearse": "rehearsal.rehearse",
    "pretrain": "built", "pretrain.smallcnn": "built.smallcnn_pretrain", "pretrain.tinyclip": "built.tinyclip",
    "models.recovery": "built.distill", "models.recover": "built.recover", "models.reconstruct": "built.reconstruct",
    "models.natural_images": "built.natural_images", "models.agreement": "built.agreement",
    "models.efficientnet_lite_compressed": "built.efficientnet_lite_compressed",
    "models.efficientnet_lite_recovered": "built.efficientnet_lite_recovered", "notebook": "nb.notebook",
    "reproduce": "nb.reproduce", "artifacts": "nb.artifacts", "tables": "nb.tables", "explore": "nb.explore",
    "colab": "nb.colab", "clip.train": "clip.train_clip", "crossmodal.train": "crossmodal.train_crossmodal",
    "clip.prompts": "clip.clip_prompts", "plots.mapping": "plots.mapping_figures",
    "plots.report": "plots.report_figures", "report.config": "report.report_config",
    "bench.allocator": "bench.allocator_bench",
}


class _Forward(importlib.abc.Loader):
    """Loads an old path as the module at its new path; runs the new one when started with ``python -m``."""

    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def create_module(self, spec: importlib.machinery.ModuleSpec):
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.spec  # importing set it to the old path's spec

    def get_code(self, fullname: str):  # what ``python -m <old>`` runs
        return compile(f"import runpy, sys\nprint('note: {self.old} moved to {self.new}; running that', "
                       f"file=sys.stderr)\nrunpy.run_module({self.new!r}, run_name='__main__', alter_sys=True)\n",
                       f"<moved {self.old}>", "exec")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        old = fullname.removeprefix(f"{PACKAGE}.")
        if old == fullname or old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Forward(fullname, f"{PACKAGE}.{MOVED[old]}"))


def install() -> None:
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())  # before an editable install's finder, which may know an old tree
