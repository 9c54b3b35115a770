#!/usr/bin/env python3
"""Hugging Face `tokenizers` baseline for Benchmarks/tokenizer.sh.

Builds the Rust BPE tokenizer the way transformers' CLIPTokenizerFast is built (NFC + whitespace
collapse + lowercase normaliser, CLIP's split regex, byte-level pre-tokeniser, BPE with '</w>',
start/end tokens, truncation and padding to 77) from clipd's own vocabulary file, checks it agrees
with clipd's ids on the captions where the two cleanings coincide, then times it on one thread.
"""
import argparse
import gzip
import json
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors  # noqa: E402
from tokenizers.models import BPE  # noqa: E402


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def build(vocab_path, context_length):
    lines = gzip.open(vocab_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    symbols = bytes_to_unicode()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    tok = Tokenizer(BPE(vocab={s: i for i, s in enumerate(vocab)}, merges=merges, continuing_subword_prefix="",
                        end_of_word_suffix="</w>", fuse_unk=False, unk_token="<|endoftext|>"))
    tok.add_special_tokens(["<|startoftext|>", "<|endoftext|>"])
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(("<|endoftext|>", 49407), ("<|startoftext|>", 49406),
                                                      add_prefix_space=False, trim_offsets=False)
    tok.enable_truncation(max_length=context_length)
    tok.enable_padding(length=context_length, pad_id=49407, pad_token="<|endoftext|>")
    return tok


def rate(fn, captions, seconds):
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn(captions)
        done += len(captions)
    return done / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--captions", required=True, help="JSON lines, one string each")
    ap.add_argument("--clipd-ids", required=True, help="clipd tokenize output for the same captions")
    ap.add_argument("--seconds", type=float, default=5)
    args = ap.parse_args()
    captions = [json.loads(line) for line in open(args.captions, encoding="utf-8")]
    tok = build(args.vocab, 77)

    # Sanity: on plain captions (no entities, quotes, sigma, special-token text ...) both agree.
    ours = [json.loads(line) for line in open(args.clipd_ids)]
    agree = compared = 0
    for text, ids in zip(captions, ours):
        if text.isascii() and "&" not in text and "<" not in text and all(c.isprintable() or c == " " for c in text):
            compared += 1
            hf = tok.encode(text).ids
            n = ids.index(49407) + 1
            agree += hf[:n] == ids[:n]
    assert compared > 0 and agree == compared, f"HF and clipd disagree on {compared - agree} of {compared} plain captions"

    one_by_one = rate(lambda cs: [tok.encode(c) for c in cs], captions, args.seconds)
    batched = rate(lambda cs: tok.encode_batch(cs), captions, args.seconds)
    # encode_batch_fast skips offset tracking: HF's fastest path.
    batched_fast = rate(lambda cs: tok.encode_batch_fast(cs), captions, args.seconds)
    print(json.dumps({"hf_encode_per_second": one_by_one, "hf_encode_batch_per_second": batched,
                      "hf_encode_batch_fast_per_second": batched_fast,
                      "plain_captions_checked": compared}))


if __name__ == "__main__":
    main()
