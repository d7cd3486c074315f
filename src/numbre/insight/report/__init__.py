"""`numbre report`: one self-contained HTML page (plus its PNGs) on what a trained model does.

Stages, one module each: `run` loads a run folder or model file, `predictions` answers the test
set, `robustness` perturbs it, `figures` draws with matplotlib, `html` writes the page, and `build`
runs them in order. Part of the `train` extra: the model runs in torch, the plots in matplotlib.
"""

from numbre.insight.report.build import Report, ReportOptions, build_report

__all__ = ["Report", "ReportOptions", "build_report"]
