"""Interactive panels (ipywidgets) that redraw figures from stored results, without training.

Each panel is a ``Panel``: the widget box to display and a plain ``redraw(**choices) -> Figure``
callback, so tests can drive the callback without a front end. Notebooks show panels only when
``notebook.interactive()`` is true (JupyterLab, Colab); headless papermill runs skip them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import plots


@dataclass
class Panel:
    """A widget box and the function that draws one figure for the current choices."""

    controls: dict[str, Sequence[Any]]
    redraw: Callable[..., Any]

    def widget(self) -> Any:
        import io

        import ipywidgets as widgets
        import matplotlib.pyplot as plt
        from IPython.display import Image, display

        dropdowns = {name: widgets.Dropdown(options=list(options), description=name)
                     for name, options in self.controls.items()}
        out = widgets.Output()

        def update(*_: Any) -> None:
            with out:
                out.clear_output(wait=True)
                fig = self.redraw(**{name: w.value for name, w in dropdowns.items()})
                # as PNG: a Figure made without pyplot has only a text repr in a Jupyter kernel
                png = io.BytesIO()
                fig.savefig(png, format="png", bbox_inches="tight")
                display(Image(data=png.getvalue(), format="png"))
                plt.close(fig)

        for w in dropdowns.values():
            w.observe(update, names="value")
        update()
        return widgets.VBox([widgets.HBox(list(dropdowns.values())), out])

    def show(self) -> None:
        from IPython.display import display

        display(self.widget())


def _options(df: Any, column: str) -> list[Any]:
    return sorted(df[column].dropna().unique().tolist(), key=str)


def accuracy_panel(df: Any, *, show: bool = True) -> Panel:
    """Accuracy vs N-shot for one dataset, one method, and a dense model vs one compressed model."""
    models = _options(df, "model")
    dense = [m for m in models if plots.compression_level(m).get("kind") == "dense"] or models

    def redraw(dataset: str, method: str, reference: str, model: str) -> Any:
        return plots.accuracy_vs_shots(df, list(dict.fromkeys([reference, model])), [dataset], [method], ncols=1)

    panel = Panel({"dataset": _options(df, "dataset"), "method": _options(df, "method"), "reference": dense,
                   "model": models}, redraw)
    if show:
        panel.show()
    return panel


def report_panel(report: Any, *, show: bool = True) -> Panel:
    """One compressed model against the dense one on one dataset: accuracy, ECE, or ECE after temperature scaling."""
    runs, config = report.runs, report.config

    def redraw(dataset: str, compressed: str, metric: str) -> Any:
        return plots.accuracy_vs_shots(runs, [config.dense, compressed], [dataset], ["ilm"], metric=metric, ncols=1,
                                       labels={config.dense: f"dense: {config.dense}"})

    panel = Panel({"dataset": list(config.datasets), "compressed": list(config.compressed),
                   "metric": ["acc", "ece", "ece_temp_scaled"]}, redraw)
    if show:
        panel.show()
    return panel


def calibration_panel(df: Any, families: dict[str, Any], *, show: bool = True) -> Panel:
    """One calibration statistic vs compression for one family and dataset (full-data runs)."""
    metrics = ("ece", "ece_paper_logit", "conf_correct", "kl_wrong_p_uniform", "kl_wrong_paper")

    def redraw(dataset: str, family: str, metric: str, method: str) -> Any:
        dense, compressed = families[family]
        x = "bits" if any(plots.compression_level(m).get("bits") not in (None, 32) for m in compressed) else "sparsity"
        return plots.stat_vs_compression(df, {family: families[family]}, [dataset], metric, x=x, methods=[method],
                                         ncols=1)

    panel = Panel({"dataset": _options(df, "dataset"), "family": list(families), "metric": metrics,
                   "method": _options(df, "method")}, redraw)
    if show:
        panel.show()
    return panel


def mapping_panel(records: Sequence[dict[str, Any]], target_split: Callable[[str], Any],
                  source_examples: Callable[[int], Any] | None, *, show: bool = True) -> Panel:
    """Which source class each model maps a target dataset's classes to, with example images."""
    by = {(r["spec"]["model"], r["spec"]["dataset"]): r for r in records}
    models = sorted({m for m, _ in by})

    def redraw(dataset: str, reference: str, model: str) -> Any:
        return plots.label_mapping_examples(by[(reference, dataset)], by[(model, dataset)], target_split(dataset),
                                            source_examples=source_examples, labels=(reference, model))

    panel = Panel({"dataset": sorted({d for _, d in by}), "reference": models, "model": models}, redraw)
    if show:
        panel.show()
    return panel
