import sys
from pathlib import Path

# sim.py sits next to the tests (import mode "importlib" does not put test directories on sys.path).
sys.path.insert(0, str(Path(__file__).parent))
