"""Generates the PNG golden data of ImageIOTests (run once; outputs are committed).

Small PNGs of the layouts libpng hands us, and for each the open_clip eval transform as
Pillow computes it (resize shortest side to 16 with BICUBIC, centre crop, convert('RGB'),
/255, OpenAI normalisation) as little-endian float32 [3,16,16].
Usage: python3 make_png_references.py   (needs pillow, numpy)
"""
import numpy as np
from PIL import Image

SIZE = 16
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)


def reference(path: str) -> np.ndarray:
    image = Image.open(path)
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
    rng = np.random.default_rng(42)
    smooth = lambda h, w, c: np.clip(
        np.cumsum(np.cumsum(rng.integers(-9, 10, (h, w, c)), 0), 1) // 3 + 128, 0, 255).astype(np.uint8)
    Image.fromarray(smooth(23, 37, 3), "RGB").save("rgb_37x23.png")
    Image.fromarray(smooth(37, 23, 1)[:, :, 0], "L").save("gray_23x37.png")
    Image.fromarray(smooth(29, 41, 3), "RGB").save("rgb_trns_41x29.png", transparency=(128, 128, 128))
    rgba = np.concatenate([smooth(27, 35, 3), rng.integers(0, 256, (27, 35, 1)).astype(np.uint8)], axis=2)
    rgba[:4, :, 3] = 0      # fully transparent rows keep their premultiplied colour
    rgba[-4:, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save("rgba_35x27.png")
    la = np.stack([smooth(33, 26, 1)[:, :, 0], rng.integers(0, 256, (33, 26)).astype(np.uint8)], axis=2)
    Image.fromarray(la, "LA").save("gray_alpha_26x33.png")
    palette_image = Image.fromarray(smooth(31, 45, 3), "RGB").quantize(colors=37)
    palette_image.save("palette_45x31.png")
    palette_image.save("palette_trns_45x31.png", transparency=5)
    Image.fromarray((smooth(40, 30, 1)[:, :, 0] > 128).astype(np.uint8) * 255, "L").convert("1").save("bilevel_30x40.png")
    # EXIF orientation 6 in an eXIf chunk; the reference is the upright picture (exif_transpose).
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(smooth(22, 34, 3), "RGB").save("rgb_exif6_34x22.png", exif=exif.tobytes())
    from PIL import ImageOps
    upright = ImageOps.exif_transpose(Image.open("rgb_exif6_34x22.png"))
    upright.save("rgb_exif6_upright.tmp.png")
    reference("rgb_exif6_upright.tmp.png").astype("<f4").tofile("rgb_exif6_34x22.f32")
    import os
    os.remove("rgb_exif6_upright.tmp.png")
    for name in ["rgb_37x23", "gray_23x37", "rgb_trns_41x29", "rgba_35x27", "gray_alpha_26x33",
                 "palette_45x31", "palette_trns_45x31", "bilevel_30x40"]:
        reference(name + ".png").astype("<f4").tofile(name + ".f32")


if __name__ == "__main__":
    main()
