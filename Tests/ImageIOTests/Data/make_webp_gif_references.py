"""Generates the WebP and GIF golden data of ImageIOTests (run once; outputs are committed).

Small WebP (lossless, lossy, lossy with alpha, animated) and GIF (palette, animated, gray ramp,
small non-interlaced) pictures, and for each the open_clip eval transform as Pillow computes it
(see make_png_references.py) as little-endian float32 [3,16,16].
Usage: python3 make_webp_gif_references.py   (needs pillow, numpy)
"""
import numpy as np
from PIL import Image

from make_png_references import reference


def main() -> None:
    rng = np.random.default_rng(7)
    smooth = lambda h, w, c: np.clip(
        np.cumsum(np.cumsum(rng.integers(-9, 10, (h, w, c)), 0), 1) // 3 + 128, 0, 255).astype(np.uint8)
    Image.fromarray(smooth(23, 37, 3), "RGB").save("webp_lossless_37x23.webp", lossless=True)
    Image.fromarray(smooth(29, 41, 3), "RGB").save("webp_lossy_41x29.webp", quality=80)
    rgba = np.concatenate([smooth(27, 35, 3), rng.integers(0, 256, (27, 35, 1)).astype(np.uint8)], axis=2)
    rgba[:4, :, 3] = 0
    Image.fromarray(rgba, "RGBA").save("webp_lossy_alpha_35x27.webp", quality=75)
    frames = [Image.fromarray(smooth(22, 30, 3), "RGB") for _ in range(3)]
    frames[0].save("webp_animated_30x22.webp", save_all=True, append_images=frames[1:], duration=100, lossless=False, quality=70)
    palette = Image.fromarray(smooth(31, 45, 3), "RGB").quantize(colors=50)
    palette.save("gif_palette_45x31.gif")  # interlaced (Pillow interlaces GIFs of 16 px and more)
    Image.fromarray(smooth(12, 15, 3), "RGB").quantize(colors=20).save("gif_small_15x12.gif")
    animated = [Image.fromarray(smooth(25, 33, 3), "RGB").quantize(colors=30) for _ in range(3)]
    animated[0].save("gif_animated_33x25.gif", save_all=True, append_images=animated[1:], duration=80, transparency=3)
    Image.fromarray(smooth(26, 19, 1)[:, :, 0], "L").save("gif_gray_19x26.gif")
    for name, extension in [("webp_lossless_37x23", "webp"), ("webp_lossy_41x29", "webp"), ("webp_lossy_alpha_35x27", "webp"),
                            ("webp_animated_30x22", "webp"), ("gif_palette_45x31", "gif"), ("gif_small_15x12", "gif"),
                            ("gif_animated_33x25", "gif"), ("gif_gray_19x26", "gif")]:
        image = Image.open(f"{name}.{extension}")
        print(name, image.mode, image.size, getattr(image, "n_frames", 1))
        reference(f"{name}.{extension}").astype("<f4").tofile(name + ".f32")
    # The GIF fixtures once refused as unsupported: their first frames as Pillow preprocesses them.
    for source, name in [("../../Fixtures/images/bad/animated.gif", "fixture_animated_gif"),
                         ("../../Fixtures/images/bad/gif_named.jpg", "fixture_gif_named")]:
        reference(source).astype("<f4").tofile(name + ".f32")


if __name__ == "__main__":
    main()


def twins() -> None:
    """Twins for the embedding test: the same pixels as lossless WebP and PNG, and the same
    palette picture as GIF and PNG (run once; committed)."""
    rng = np.random.default_rng(11)
    a = np.clip(np.cumsum(np.cumsum(rng.integers(-9, 10, (40, 52, 3)), 0), 1) // 3 + 128, 0, 255).astype(np.uint8)
    image = Image.fromarray(a, "RGB")
    image.save("twin_rgb_52x40.webp", lossless=True)
    image.save("twin_rgb_52x40.png")
    palette = image.quantize(colors=40)
    palette.save("twin_palette_52x40.gif")
    palette.save("twin_palette_52x40.png")
