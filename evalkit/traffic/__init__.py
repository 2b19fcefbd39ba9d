"""Suites from real traffic: a router's request log becomes a labelled, scrubbed, reviewable suite.

``build_suite(log, router_json, out, TrafficOptions(...))`` reads the log (``logs``: JSONL, CSV
or Parquet, dotted field paths, conversations kept whole), scrubs every text (``evalkit.scrub``),
removes exact and near-duplicates and samples stratified by route (``sample``), optionally asks a
labeler model for a second label (``labeler``), and writes the suite folder. Every case starts
as a pre-label: ``expected_route`` = the observed route, ``label_source: router``,
``reviewed: false``; ``evalkit.review`` is the page where a person confirms or changes them.

(Not to be confused with the traffic *mix* files of ``evalkit cost``, which describe volumes.)
"""

from evalkit.traffic.build import DISAGREE_TAG, TrafficOptions, TrafficReport, build_suite
from evalkit.traffic.labeler import LabelerSettings
from evalkit.traffic.logs import LogFields

__all__ = ["DISAGREE_TAG", "LabelerSettings", "LogFields", "TrafficOptions", "TrafficReport", "build_suite"]
