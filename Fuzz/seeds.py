#!/usr/bin/env python3
"""Writes seed inputs for one fuzz target into a corpus directory (from Tests/ fixtures).

    python3 Fuzz/seeds.py TARGET CORPUS_DIR

Large fixtures (the 14 MB model files) are cut down: libFuzzer works best on small inputs,
so checkpoint seeds are small valid files built here plus the fixtures' own headers/pickles.
"""
import io, json, os, struct, sys, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "Fixtures")


def safetensors(tensors, metadata=None):
    header, body = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + body


def pickle_state_dict(entries):
    """A protocol-2 pickle of {name: tensor} the way torch.save writes it (OrderedDict, BINPERSID)."""
    out = bytearray(b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(")
    for i, (name, storage, dtype, offset, shape, strides, numel) in enumerate(entries):
        out += b"X" + struct.pack("<I", len(name)) + name.encode()
        out += b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(X\x07\x00\x00\x00storage" + b"ctorch\n" + dtype.encode() + b"\n"
        out += b"X" + struct.pack("<I", len(storage)) + storage.encode() + b"X\x03\x00\x00\x00cpu"
        out += b"J" + struct.pack("<i", numel) + b"tQ"
        out += b"J" + struct.pack("<i", offset)
        out += b"(" + b"".join(b"J" + struct.pack("<i", s) for s in shape) + b"t"
        out += b"(" + b"".join(b"J" + struct.pack("<i", s) for s in strides) + b"t"
        out += b"\x89ccollections\nOrderedDict\n)RtR"
    out += b"u."
    return bytes(out)


def torch_zip(pickle, storages):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle)
        z.writestr("archive/version", b"3\n")
        for key, data in storages.items():
            z.writestr("archive/data/" + key, data)
    return buf.getvalue()


def write(corpus, name, data):
    with open(os.path.join(corpus, name), "wb") as f:
        f.write(data)


def seeds(target, corpus):
    os.makedirs(corpus, exist_ok=True)
    if target == "safetensors":
        f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
        write(corpus, "small", safetensors({"a": ("F32", [2, 3], f32), "b": ("F16", [2], b"\x00\x3c\x00\x40"),
                                            "c": ("BF16", [], b"\x80\x3f")}, {"format": "pt"}))
        write(corpus, "empty_tensor", safetensors({"z": ("I64", [0, 4], b""), "y": ("F64", [1], struct.pack("<d", 0.5))}))
        with open(os.path.join(FIX, "models/tiny/openai_format.safetensors"), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            f.seek(0)
            write(corpus, "fixture_header", f.read(8 + n + 64))
    elif target == "torch":
        entries = [("w", "0", "FloatStorage", 0, [2, 3], [3, 1], 6),
                   ("t", "0", "FloatStorage", 0, [3, 2], [1, 3], 6),
                   ("h", "1", "HalfStorage", 1, [2], [1], 3)]
        storages = {"0": struct.pack("<6f", 1, 2, 3, 4, 5, 6), "1": b"\x00\x3c\x00\x40\x00\x42"}
        pk = pickle_state_dict(entries)
        write(corpus, "small.pt", torch_zip(pk, storages))
        write(corpus, "small.pkl", pk)
        with zipfile.ZipFile(os.path.join(FIX, "models/tiny/openai_format.pt")) as z:
            name = [n for n in z.namelist() if n.endswith("data.pkl")][0]
            real = z.read(name)
        write(corpus, "fixture.pkl", real)
        write(corpus, "fixture_pickle_small_storages.pt", torch_zip(real, {str(i): b"\x00" * 64 for i in range(4)}))
    elif target == "image":
        for d in [os.path.join(FIX, "images"), os.path.join(FIX, "images", "bad"), os.path.join(ROOT, "Tests/ImageIOTests/Data")]:
            for n in sorted(os.listdir(d)):
                p = os.path.join(d, n)
                if n.lower().endswith((".jpg", ".png")) and os.path.getsize(p) <= 100_000:
                    with open(p, "rb") as f:
                        write(corpus, n, f.read())
    elif target == "record":
        records = [
            {"id": "r-1", "image_url": "https://example.com/a.jpg", "caption": "a cat", "label_set": "animals",
             "metadata": {"k": [1, 2.5, None, True, {"n": "x"}]}},
            {"image_url": "file:///data/img.png"},
            {"id": "é\u00e9\U0001F600", "image_url": "http://h/x", "caption": "\\u0000 text"},
        ]
        for i, r in enumerate(records):
            write(corpus, "record%d.json" % i, json.dumps(r).encode())
        write(corpus, "not_json", b"{\"id\": ")
    else:
        # Targets added by others may have no seeds here; libFuzzer starts from nothing.
        pass


if __name__ == "__main__":
    seeds(sys.argv[1], sys.argv[2])
