"""The project's metadata says one thing everywhere: one version (``xdx_lib.__version__``),
which the citation file and the changelog's newest entry name too, and the MIT licence."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml

import xdx_lib

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_written_once_and_read_by_setuptools():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "xdx_lib.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", xdx_lib.__version__)


def test_the_citation_names_this_version_and_prefers_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["version"] == xdx_lib.__version__
    assert cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert paper["title"] == "Learning Interpretation with Explainable Knowledge Distillation"
    assert [a["family-names"] for a in paper["authors"]] == ["Alharbi", "Vu", "Thai"]


def test_the_changelog_opens_with_this_version():
    headings = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings and headings[0] == xdx_lib.__version__, headings


def test_the_licence_is_the_declared_one():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
