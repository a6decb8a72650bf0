"""Print a short hash of the dependency list in pyproject.toml (the CI venv cache key)."""

import hashlib
import json
import sys
from pathlib import Path

import tomllib

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
payload = {
    "python": sys.version_info[:2],
    "dependencies": sorted(project["dependencies"]),
    "optional": {k: sorted(v) for k, v in sorted(project.get("optional-dependencies", {}).items())},
}
print(hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16])
