import sys
from pathlib import Path

import pytest

# make `import training` work from any working directory (repo root, models/, ...)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

torch = pytest.importorskip("torch")
torch.set_num_threads(int(__import__("os").environ.get("SIC_THREADS", "2")))
