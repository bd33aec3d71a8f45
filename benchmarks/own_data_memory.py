"""Memory of a run's own array files: measured peak against the memory check's estimate.

For each case an array file (or a folder of PNG files) of random images is written to a temporary
folder, and a fresh process loads its train and test splits as ``main.py``
does (``data.info``, then ``data.load`` of both splits). The rise of the
process's peak resident memory over its state after TensorFlow's first
operations is compared with ``data.in_memory_bytes``, the estimate the memory
check of a run adds to the model's memory:

    python benchmarks/own_data_memory.py

A ratio (measured / estimated) at or below about 1 means the check counts
what loading takes. The file's own pages count as resident: a ``.npy`` is
read through a memory map. Linux only (it reads the peak from ``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from common import publish, require_at_least, settings
from PIL import Image

# (dtype, images, side, channels, --image_size or 0)
CASES = (
    ("uint8", 4000, 96, 3, 0),
    ("uint8", 4000, 96, 3, 32),
    ("float32", 10000, 32, 3, 0),
    ("float32", 10000, 32, 3, 16),
    ("float64", 5000, 32, 3, 0),
    ("png", 3000, 64, 3, 0),  # a folder of PNG files
)

_CHILD = """
import json, sys
import numpy as np
from PIL import Image
from pixel_models import data, own_data
def kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
spec, size = sys.argv[1], int(sys.argv[2]) or None
own_data._resize(np.zeros((2, 8, 8, 3), np.uint8), 4).numpy()  # TensorFlow's own start
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak starts again from the resident memory now
base = kib("VmRSS:")
meta = data.info(spec, image_size=size)
splits = [data.load(spec, split, image_size=size) for split in ("train", "test")]
for split in splits:
    next(iter(split))
rise = kib("VmHWM:") - base
print(json.dumps({"estimate_mib": data.in_memory_bytes(meta) / 2**20, "rise_mib": rise / 1024}))
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=1, help="multiplies the number of images")
    p.add_argument("--output", default=None, help="JSON report (none by default)")
    args = p.parse_args(argv)
    require_at_least(p, args, 1, ("scale",))
    return args


def measure(folder: str, case: tuple, scale: int) -> dict:
    dtype, count, side, channels, size = case
    rng = np.random.default_rng(0)
    shape = (count * scale, side, side, channels)
    if dtype in ("uint8", "png"):
        images = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        images = rng.random(shape).astype(dtype)
    if dtype == "png":
        path = os.path.join(folder, "pngs")
        os.makedirs(path)
        for i, image in enumerate(images):
            Image.fromarray(image).save(os.path.join(path, f"{i:06d}.png"))
        file_mib = sum(os.path.getsize(f.path) for f in os.scandir(path)) / 2**20
    else:
        path = os.path.join(folder, f"{dtype}_{side}.npy")
        np.save(path, images)
        file_mib = os.path.getsize(path) / 2**20
    del images
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, path, str(size)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    shutil.rmtree(path) if dtype == "png" else os.remove(path)
    return {
        "dtype": dtype,
        "shape": list(shape),
        "image_size": size or None,
        "file_mib": round(file_mib, 1),
        "estimate_mib": round(found["estimate_mib"], 1),
        "measured_mib": round(found["rise_mib"], 1),
        "ratio": round(found["rise_mib"] / found["estimate_mib"], 2),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        cases = [measure(folder, case, args.scale) for case in CASES]
    publish({"settings": settings(args), "cases": cases}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
