"""The benchmark of the ``auto`` reader's rules: which rule decided an image, and what changes
without each one, on a few validation pages and crops."""

from __future__ import annotations

import pytest
from benchmark_module import benchmark_module

from digitrec.read.policy import PAGES, RULES, Case, Rule
from digitrec.read.recognizer import Recognizer
from digitrec.read.results import Reading

NOTHING = Reading("", [])


@pytest.fixture(scope="module")
def bench():
    """benchmarks/policy_rules.py as a module (benchmarks/ is not a package)."""
    yield from benchmark_module("policy_rules.py", "policy_rules_bench")


def test_the_recorder_names_the_first_rule_that_applies(bench):
    never = Rule("never", PAGES, lambda case: False, "")
    always = Rule("always", PAGES, lambda case: True, "")
    recorder = bench.RuleRecorder((never, always, never))
    case = Case(10, 10, judge=lambda reading: True, readings={PAGES: NOTHING})
    assert [rule.name for rule in recorder.rules] == ["never", "always", "never"]
    assert next(rule for rule in recorder.rules if rule.applies(case)).name == "always"
    assert recorder.decided == "always"


def test_a_change_counts_images_gained_and_lost_by_group(bench):
    made = [bench.Image(bench.PAGES, group, None, bool) for group in ("photo", "photo", "gaps")]
    assert bench.change([True, False, True], [False, False, True], made) == "-1 (photo -1)"
    assert bench.change([False, False, False], [True, True, False], made) == "+2 (photo +2)"
    assert bench.change([True] * 3, [True] * 3, made) == "no change"
    assert bench.change([], [], []) == "-"
    assert bench.groups(made) == "3 (photo 2, gaps 1)"


def test_every_rule_is_measured_on_pages_and_crops(bench, mnist_dir):
    images = bench.page_images(1, seed=3) + bench.crop_images(6, seed=4)
    assert {image.kind for image in images} == {bench.PAGES, bench.CROPS}
    recognizer = Recognizer.load("default", threads=1)
    texts, deciders = bench.read_all(recognizer, images)
    assert set(deciders) <= {rule.name for rule in RULES}
    rows = bench.rule_rows(recognizer, images, texts, deciders)
    assert [row[1] for row in rows] == [rule.name for rule in RULES]
    decided = sum(int(str(row[column]).split()[0]) for row in rows for column in (3, 5))
    assert decided == len(images)  # each image decided by exactly one rule
    assert bench.summary(images, texts).startswith("With all the rules: ")
