#!/usr/bin/env python3
"""Writes the benchmark captions as JSON lines: the 62 fixture captions plus 2,000 seeded,
realistic alt-text / product-style captions (mostly English, some accents, entities, emoji)."""
import json
import random
import sys

fixtures = json.load(open(sys.argv[1]))["captions"]
rng = random.Random(7)
adjectives = ["red", "old", "small", "vintage", "wooden", "bright", "blue", "happy", "rustic", "modern", "fluffy",
              "shiny", "dark", "colorful", "tiny", "huge", "handmade", "organic", "Scandinavian", "minimalist"]
nouns = ["cat", "dog", "bicycle", "coffee mug", "mountain", "street", "kitchen", "sneakers", "guitar", "teapot",
         "sofa", "lighthouse", "croissant", "backpack", "watch", "tulips", "skyscraper", "canoe", "laptop", "puppy"]
places = ["on a wooden table", "in the park", "at sunset", "near the river", "in a cozy living room",
          "against a white background", "on the beach", "in Paris", "at the café", "during winter"]
extras = ["", "", "", " — free shipping!", " (2024)", " #travel #photo", " 😍", " &amp; more", " | Size: M",
          " 100% cotton", " by John O'Neil", " it's gorgeous", " naïve art", " 4K HDR", " 50% OFF"]
captions = [c["text"] for c in fixtures]
for _ in range(2000):
    k = rng.random()
    if k < 0.5:
        text = f"a photo of a {rng.choice(adjectives)} {rng.choice(nouns)} {rng.choice(places)}"
    elif k < 0.8:
        text = f"{rng.choice(adjectives).title()} {rng.choice(nouns).title()} {rng.randint(1, 999)} {rng.choice(places)}"
    else:
        text = " ".join(rng.choice(adjectives + nouns) for _ in range(rng.randint(8, 30)))
    captions.append(text + rng.choice(extras))
for text in captions:
    print(json.dumps(text))
