"""Figures and HTML built only from stored results."""

from artiphys.report.html import build_report

__all__ = ["build_report"]
