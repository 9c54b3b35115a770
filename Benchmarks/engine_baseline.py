"""The same-run baseline of Benchmarks/engine_vs_onnxruntime.sh: open_clip's ViT-B-32 (QuickGELU,
as clipd's ViT-B-32) with the weights clipd saved, exported to ONNX and timed in onnxruntime
and in torch, fp32, on the CPU.

  engine_baseline.py export CHECKPOINT DIR        # writes DIR/vision.onnx, DIR/text.onnx
  engine_baseline.py time CHECKPOINT DIR WHAT BATCH SECONDS THREADS
      WHAT: vision | text77 | text15; prints one JSON line per engine (rate per second, median
      of the timed runs).
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import open_clip
from safetensors.torch import load_file

ARCH = "ViT-B-32-quickgelu"


def load_model(checkpoint):
    model = open_clip.create_model(ARCH, pretrained=None)
    state = load_file(checkpoint)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "attn_mask"]
    if missing or unexpected:
        sys.exit(f"checkpoint does not match {ARCH}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


class Vision(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):
        return self.model.encode_image(pixels)


class Text(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens):
        return self.model.encode_text(tokens)


def export(checkpoint, directory):
    model = load_model(checkpoint)
    os.makedirs(directory, exist_ok=True)
    pixels = torch.randn(2, 3, 224, 224)
    tokens = captions(2, 77)
    for name, module, example, input_name in [("vision", Vision(model), pixels, "pixels"), ("text", Text(model), tokens, "tokens")]:
        path = os.path.join(directory, f"{name}.onnx")
        kwargs = dict(input_names=[input_name], output_names=["features"],
                      dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}}, opset_version=17)
        try:
            torch.onnx.export(module, (example,), path, dynamo=False, **kwargs)
        except TypeError:
            torch.onnx.export(module, (example,), path, **kwargs)
        print(json.dumps({"exported": path}))


def captions(batch, length):
    """Token rows as clipd bench makes them: SOT, random ids, EOT at length-1, zero padding."""
    rng = np.random.default_rng(3)
    ids = np.zeros((batch, 77), dtype=np.int64)
    ids[:, 0] = 49406
    ids[:, 1:length - 1] = rng.integers(400, 40000, size=(batch, length - 2))
    ids[:, length - 1] = 49407
    return torch.from_numpy(ids)


def rate(run, batch, seconds):
    run()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times), len(times)


def timed(checkpoint, directory, what, batch, seconds, threads):
    import onnxruntime as ort
    torch.set_num_threads(threads)
    model = load_model(checkpoint)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if what == "vision":
        session = ort.InferenceSession(os.path.join(directory, "vision.onnx"), options, providers=["CPUExecutionProvider"])
        x = torch.from_numpy(np.random.default_rng(3).standard_normal((batch, 3, 224, 224)).astype(np.float32))
        feed = {"pixels": x.numpy()}
        torch_run = lambda: model.encode_image(x)
    else:
        session = ort.InferenceSession(os.path.join(directory, "text.onnx"), options, providers=["CPUExecutionProvider"])
        x = captions(batch, 77 if what == "text77" else 15)
        feed = {"tokens": x.numpy()}
        torch_run = lambda: model.encode_text(x)
    with torch.inference_mode():
        reference = torch_run().numpy()
        got = session.run(None, feed)[0]
        ort_rate, ort_runs = rate(lambda: session.run(None, feed), batch, seconds)
        torch_rate, torch_runs = rate(torch_run, batch, seconds)
    diff = float(np.abs(got - reference).max())
    for engine, r, runs, version in [("onnxruntime", ort_rate, ort_runs, ort.__version__), ("torch", torch_rate, torch_runs, torch.__version__)]:
        print(json.dumps({"engine": engine, "version": version, "what": what, "batch": batch, "threads": threads,
                          "per_s": round(r, 3), "runs": runs, "max_abs_diff_ort_vs_torch": diff}))


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "time":
        timed(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]))
    else:
        sys.exit(__doc__)
