"""The README's engine example runs and prints what the README says it prints."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_engine_example_prints_the_documented_outputs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "asyncio.run(main())" in b)
    expected = re.findall(r"print\(.*?\)\s+# (.+)", example)
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                            cwd=README.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == expected
