"""Figures and HTML built only from stored results."""

from artiphys.report.compare import build_comparison_report
from artiphys.report.html import build_report

__all__ = ["build_report", "build_comparison_report"]
