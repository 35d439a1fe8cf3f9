"""CI runs exactly the README's install and test commands."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    return blocks[0].strip(), blocks[1].strip()


def test_ci_runs_the_readme_install_and_test_commands():
    install, test = _readme_commands()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install == 'pip install -e ".[dev]"'
    assert install in ci and test in ci
    assert ci.index(install) < ci.index(test)
