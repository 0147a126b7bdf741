"""The command-line interface (the only package that imports typer and rich)."""

import os

# Large CPU temporaries page-fault on first touch; transparent huge pages cut that cost by
# about 3x in our benchmarks. torch reads this once, at import, so it is set before torch loads.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
