"""Pillow baseline for Benchmarks/preprocess.sh: open_clip's eval transform without torch.

open -> resize shortest side (bicubic) -> centre crop -> convert('RGB') -> /255 -> normalise,
the same steps as open_clip.image_transform(224, is_train=False), single thread, inputs in memory.
Usage: pillow_preprocess.py SECONDS IMAGE...  (prints one JSON line)
       pillow_preprocess.py --write OUT.npy IMAGE (one tensor, for comparisons)
"""
import io
import json
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)
SIZE = 224


def preprocess(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(SIZE * long / short)
    new_width, new_height = (SIZE, new_long) if width <= height else (new_long, SIZE)
    image = image.resize((new_width, new_height), Image.BICUBIC)
    left = int(round((new_width - SIZE) / 2.0))
    top = int(round((new_height - SIZE) / 2.0))
    image = image.crop((left, top, left + SIZE, top + SIZE)).convert("RGB")
    chw = np.asarray(image).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return np.ascontiguousarray((chw - MEAN) / STD)


def main() -> None:
    if sys.argv[1] == "--write":
        np.save(sys.argv[2], preprocess(open(sys.argv[3], "rb").read()))
        return
    seconds = float(sys.argv[1])
    inputs = [open(path, "rb").read() for path in sys.argv[2:]]
    count = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    while True:
        for data in inputs:
            preprocess(data)
            count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    cpu = time.process_time() - cpu_start
    print(json.dumps({"images": count, "seconds": elapsed, "cpu_seconds": cpu,
                      "images_per_second": count / elapsed, "images_per_cpu_second": count / cpu}))


if __name__ == "__main__":
    main()
