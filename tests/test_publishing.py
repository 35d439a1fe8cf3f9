"""Publishing: the Pages workflow installs and builds with the README's own commands, every
citation resolves in references.bib, CITATION.cff names the paper, and _config.yml has the
bibliography, repository and launch buttons. Fast: files are only read, nothing is built."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
INSTALL = 'pip install -e ".[dev]"'
REPOSITORY = "https://github.com/jmvae-study/jmvae-reproduced"
PAPER_TITLE = "Joint Multimodal Learning with Deep Generative Models"
# keys that the chapters and notebooks of several contributors rely on
REQUIRED_KEYS = {
    "suzuki2016jmvae", "suzuki2016code", "burda2016iwae", "kingma2014vae", "sohn2015cvae",
    "pandey2017cmma", "larsen2016vaegan", "lecun1998mnist", "liu2015celeba", "wu2018mvae",
    "shi2019mmvae", "sutter2021mopoe", "pixyz", "multivae", "kingma2015adam", "rescience",
    "mlrc",
}  # fmt: skip
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]*)`")


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _readme_bash_lines() -> list[str]:
    """Every command line of the README's ```bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def _workflow_steps() -> list[dict]:
    jobs = _yaml(WORKFLOW)["jobs"]
    return [step for job in jobs.values() for step in job.get("steps", [])]


def _workflow_runs() -> list[str]:
    return [step["run"].strip() for step in _workflow_steps() if "run" in step]


def _config_build_command() -> str:
    """The build command named in the header comment of _config.yml ("Build: ...")."""
    for line in (ROOT / "_config.yml").read_text().splitlines():
        if not line.startswith("#"):
            break
        found = re.search(r"Build:\s*(.+?)\s*$", line)
        if found:
            return found.group(1)
    raise AssertionError("_config.yml's header comment names no 'Build: <command>'")


def _uses(action: str) -> dict:
    steps = [s for s in _workflow_steps() if s.get("uses", "").startswith(action + "@")]
    assert len(steps) == 1, f"the workflow must use {action} exactly once"
    return steps[0]


def test_workflow_installs_with_the_readme_command():
    lines = _readme_bash_lines()
    assert lines and lines[0] == INSTALL, f"README's first ```bash block must be {INSTALL}"
    installs = [run for run in _workflow_runs() if run.startswith("pip install")]
    assert installs == [INSTALL], f"the workflow must install exactly with {INSTALL}"


def test_workflow_builds_with_the_readme_command():
    command = _config_build_command()
    assert command == "jupyter-book build . -W -n --keep-going"
    builds = [run for run in _workflow_runs() if run.startswith("jupyter-book")]
    assert builds == [command], f"the workflow must build the book exactly with {command}"
    assert command in _readme_bash_lines(), (
        f"README.md shows no book build command. Add a ```bash block with the line `{command}` "
        "(the command _config.yml's header names and the Pages workflow runs), after the "
        "install and test blocks."
    )


def test_workflow_publishes_to_pages():
    workflow = _yaml(WORKFLOW)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    assert workflow["permissions"]["pages"] == "write"
    assert workflow["permissions"]["id-token"] == "write"
    assert str(_uses("actions/setup-python")["with"]["python-version"]) == "3.11"
    _uses("actions/checkout")
    cache = _uses("actions/cache")["with"]
    assert cache["path"] == "_build/.jupyter_cache" and "hashFiles('notebooks/" in cache["key"]
    assert _uses("actions/upload-pages-artifact")["with"]["path"] == "_build/html"
    _uses("actions/deploy-pages")


def test_citation_cff_names_the_paper():
    cff = _yaml(ROOT / "CITATION.cff")
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] == "JMVAE, reproduced"
    assert cff["authors"] == [{"name": "The JMVAE study contributors"}]
    assert cff["repository-code"] == REPOSITORY
    cited = [cff.get("preferred-citation"), *cff.get("references", [])]
    papers = [c for c in cited if c and c.get("title") == PAPER_TITLE]
    assert papers, f"CITATION.cff must name the paper {PAPER_TITLE!r}"
    assert "1611.01891" in json.dumps(papers[0])
    assert [a["family-names"] for a in papers[0]["authors"]] == ["Suzuki", "Nakayama", "Matsuo"]


def _bib_keys() -> list[str]:
    text = (ROOT / "references.bib").read_text()
    return re.findall(r"^@\w+\s*\{\s*([^,\s]+)\s*,", text, re.M)


def _cited_keys() -> dict[str, set[str]]:
    """Citation keys used per file: book/*.md and the markdown cells of notebooks/*.ipynb."""
    texts = {p: p.read_text() for p in sorted((ROOT / "book").glob("*.md"))}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        texts[nb] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return {
        path.relative_to(ROOT).as_posix(): {
            key.strip() for match in CITE.findall(text) for key in match.split(",") if key.strip()
        }
        for path, text in texts.items()
    }


def test_bibliography_keys_are_unique_and_complete():
    keys = _bib_keys()
    assert len(keys) == len(set(keys)), "references.bib defines a key twice"
    assert REQUIRED_KEYS <= set(keys), f"missing from references.bib: {REQUIRED_KEYS - set(keys)}"


def test_every_cited_key_is_in_references_bib():
    known = set(_bib_keys())
    cited = _cited_keys()
    unknown = {f: sorted(keys - known) for f, keys in cited.items() if keys - known}
    assert not unknown, f"cited keys not in references.bib: {unknown}"
    assert cited["book/model.md"], "book/model.md cites nothing"


def test_config_has_bibliography_repository_and_launch_buttons():
    config = _yaml(ROOT / "_config.yml")
    assert config["bibtex_bibfiles"] == ["references.bib"]
    assert config["sphinx"]["config"]["numfig"] is True
    assert config["repository"] == {"url": REPOSITORY, "path_to_book": ".", "branch": "main"}
    assert config["html"]["use_repository_button"] is True
    assert config["html"]["use_issues_button"] is True
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_references_page_is_the_last_chapter():
    toc = _yaml(ROOT / "_toc.yml")
    assert toc["parts"][-1]["chapters"][-1] == {"file": "book/references"}
    page = (ROOT / "book" / "references.md").read_text()
    assert "```{bibliography}" in page
    assert "(protocol)=" in (ROOT / "book" / "model.md").read_text()
