"""A drawn stand-in for CelebA, generated here from a seed, in CelebA's own file layout.

CelebA cannot be downloaded in this environment (book/celeba.md), so the pipeline runs on cartoon
faces that carry a subset of CelebA's attributes under CelebA's spelling. `write_standin` lays
them out exactly like the real folder (`img_align_celeba/000001.jpg`, `list_attr_celeba.txt`,
`list_eval_partition.txt`), so `jmvae_core.celeba` reads both with the same code. Every drawn
attribute is visible inside the loader's 128×128 centre crop; faces vary in position, size,
skin, hair shade, background and noise so that predicting attributes is not trivial.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from jmvae_core.config import STANDIN_ATTRIBUTES
from jmvae_core.data.celeba import ATTRIBUTE_FILE, IMAGE_DIR, PARTITION_FILE
from jmvae_core.data.mnist import DataError

VERSION = "standin-1"
TRUTH_FILE = "standin_truth.npz"
README_FILE = "README.txt"
NOISE_SEED = 2016  # the fixed noise field; each image takes a window of it
WIDTH, HEIGHT = 178, 218  # CelebA's aligned images
CENTRE = (89.0, 118.5)  # puts the eyes near y=111 and the mouth near y=153, as in CelebA
UNIT = 1.25  # face units to pixels: eyes 38 px apart, as in the aligned CelebA images
ATTRIBUTES = STANDIN_ATTRIBUTES  # CelebA's spelling and column order
HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
HAIR_RGB = {
    "Black_Hair": (38, 30, 28), "Blond_Hair": (224, 192, 112), "Brown_Hair": (106, 66, 36),
    "Gray_Hair": (176, 174, 170), None: (158, 70, 38),  # None: auburn, no CelebA colour label
}  # fmt: skip
# P(black, blond, brown, gray, other) given female / male; each label ends up at 0.15-0.25
HAIR_P = {False: (0.26, 0.28, 0.24, 0.16, 0.06), True: (0.30, 0.10, 0.22, 0.30, 0.08)}
README = f"""This folder is NOT CelebA. It is a drawn stand-in ({VERSION}) written by
jmvae_core.standin.write_standin, in CelebA's file layout, because CelebA cannot be
downloaded where this study was run. Cartoon faces carry {len(ATTRIBUTES)} of CelebA's 40
attributes: {", ".join(ATTRIBUTES)}.
{TRUTH_FILE} holds the attributes, every nuisance variable, the seed and the version.
"""


def sample_attributes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Attributes (n, len(ATTRIBUTES)) int8 in {-1, +1}, with CelebA-like dependencies."""

    def bern(p):
        return rng.random(n) < p

    male = bern(0.45)
    bald = bern(np.where(male, 0.36, 0.02))
    cum = np.cumsum([HAIR_P[False], HAIR_P[True]], axis=1)[male.astype(int)]
    colour = (rng.random(n)[:, None] > cum[:, :-1]).sum(axis=1)  # 4 means no colour label
    makeup = bern(np.where(male, 0.02, 0.62))
    smiling = bern(0.48)
    on = {
        "Bald": bald,
        "Bangs": ~bald & bern(np.where(male, 0.22, 0.40)),
        "Eyeglasses": bern(np.where(male, 0.28, 0.12)),
        "Heavy_Makeup": makeup,
        "Male": male,
        "Mouth_Slightly_Open": bern(np.where(smiling, 0.62, 0.22)),
        "Mustache": male & bern(0.42),
        "Narrow_Eyes": bern(np.where(smiling, 0.30, 0.10)),  # smiles narrow the eyes
        "Pale_Skin": bern(np.where(male, 0.12, 0.25)),
        "Smiling": smiling,
        "Wearing_Hat": bern(0.2),
        "Wearing_Lipstick": bern(np.where(makeup, 0.92, np.where(male, 0.01, 0.35))),
    }
    for k, name in enumerate(HAIR_COLOURS):
        on[name] = ~bald & (colour == k)  # mutually exclusive; bald heads have none
    return np.stack([np.where(on[a], 1, -1) for a in ATTRIBUTES], axis=1).astype(np.int8)


def sample_nuisance(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Everything about a face that no attribute describes, one row per image."""

    def colours(lo, hi):
        return rng.integers(lo, hi, size=(n, 3)).astype(np.uint8)

    tone = rng.random(n)[:, None]  # light to dark skin
    skin = (1 - tone) * np.array([238, 202, 176]) + tone * np.array([132, 88, 62])
    return {
        "dx": np.clip(rng.normal(0, 1.5, n), -4, 4).astype(np.float32),
        "dy": np.clip(rng.normal(0, 1.5, n), -4, 4).astype(np.float32),
        "scale": rng.uniform(0.9, 1.1, n).astype(np.float32),
        "width": rng.uniform(0.93, 1.07, n).astype(np.float32),
        "skin": np.round(skin).astype(np.uint8),
        "hair_shade": rng.uniform(-1, 1, n).astype(np.float32),
        "bg_top": colours(30, 235),
        "bg_bottom": colours(30, 235),
        "clothes": colours(20, 235),
        "hat": colours(20, 235),
        "lipstick": (np.array([190, 28, 52]) + rng.integers(-25, 26, (n, 3))).astype(np.uint8),
        "eye_shadow": colours(60, 200),
        "noise_sigma": rng.uniform(2, 6, n).astype(np.float32),
        "noise_x": rng.integers(0, 64, n).astype(np.int16),
        "noise_y": rng.integers(0, 64, n).astype(np.int16),
    }


def nuisance_row(nuisance: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Row i of `sample_nuisance`'s arrays, as `render` takes it."""
    return {k: v[i] for k, v in nuisance.items()}


_NOISE: list[np.ndarray] = []


def _noise_bank() -> np.ndarray:
    # one fixed field, windowed per image: rendering stays a pure function and fast
    if not _NOISE:
        field = np.random.default_rng(NOISE_SEED).standard_normal((HEIGHT + 64, WIDTH + 64, 3))
        _NOISE.append(field.astype(np.float32))
    return _NOISE[0]


def _mix(a, b, t) -> tuple[int, int, int]:
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b, strict=True))


class _Face:
    """Face coordinates (pixels at scale 1, origin at the face centre) mapped onto the canvas."""

    def __init__(self, draw: ImageDraw.ImageDraw, nu: dict):
        self.draw, self.s, self.w = draw, UNIT * float(nu["scale"]), float(nu["width"])
        self.cx, self.cy = CENTRE[0] + float(nu["dx"]), CENTRE[1] + float(nu["dy"])

    def xy(self, *pts):
        return [(self.cx + x * self.s * self.w, self.cy + y * self.s) for x, y in pts]

    def box(self, x0, y0, x1, y1):
        return self.xy((x0, y0), (x1, y1))

    def width(self, w):
        return max(1, round(w * self.s))


def _colours(on: dict, nu: dict) -> dict:
    skin = tuple(int(c) for c in nu["skin"])
    if on["Pale_Skin"]:
        skin = _mix(skin, (250, 240, 236), 0.6)
    name = next((c for c in HAIR_COLOURS if on[c]), None)
    shade = 1 + 0.15 * float(nu["hair_shade"])
    hair = tuple(min(255, int(c * shade)) for c in HAIR_RGB[name])
    lips = tuple(int(c) for c in nu["lipstick"]) if on["Wearing_Lipstick"] else None
    return {
        "skin": skin,
        "shadow": _mix(skin, (60, 30, 20), 0.25),
        "hair": hair,
        "brows": (70, 50, 40) if on["Bald"] else _mix(hair, (0, 0, 0), 0.45),
        "beard": _mix(hair, (0, 0, 0), 0.35),
        "lips": lips or _mix(skin, (100, 25, 35), 0.7),
        "mouth": (70, 22, 28),
    }


def _head(f: _Face, on: dict, c: dict, nu: dict) -> None:
    d, male, long_hair = f.draw, on["Male"], not (on["Male"] or on["Bald"])
    d.ellipse(f.box(-80, 80, 80, 170), fill=tuple(int(v) for v in nu["clothes"]))
    if long_hair:  # behind the neck, down to the shoulders
        d.ellipse(f.box(-47, -62, 47, 30), fill=c["hair"])
        d.rectangle(f.box(-47, -10, 47, 84), fill=c["hair"])
    elif not on["Bald"]:
        d.ellipse(f.box(-41, -60, 41, 10), fill=c["hair"])
    neck = 19 if male else 15
    d.rectangle(f.box(-neck, 30, neck, 90), fill=c["shadow"])
    d.ellipse(f.box(-41, -14, -31, 10), fill=c["skin"])
    d.ellipse(f.box(31, -14, 41, 10), fill=c["skin"])
    d.ellipse(f.box(-36, -50, 36, 50), fill=c["skin"])
    if male:  # a squarer, wider jaw
        d.rounded_rectangle(f.box(-34, 0, 34, 46), radius=f.width(16), fill=c["skin"])
    if on["Bald"]:
        d.ellipse(f.box(-16, -46, 2, -37), fill=_mix(c["skin"], (255, 255, 255), 0.45))
    else:
        d.chord(f.box(-38, -56, 38, -4), 180, 360, fill=c["hair"])
    if on["Bangs"]:
        teeth = [(x, -18 if k % 2 == 0 else -23) for k, x in enumerate(range(34, -35, -8))]
        d.polygon(f.xy((-35, -42), (35, -42), *teeth), fill=c["hair"])
    if on["Wearing_Hat"]:  # hides the top of the hair; long hair still shows at the sides
        hat = tuple(int(v) for v in nu["hat"])
        d.rounded_rectangle(f.box(-36, -74, 36, -32), radius=f.width(10), fill=hat)
        d.rectangle(f.box(-52, -38, 52, -29), fill=_mix(hat, (0, 0, 0), 0.3))


def _eyes(f: _Face, on: dict, c: dict, nu: dict) -> None:
    d = f.draw
    eye_h = 1.6 if on["Narrow_Eyes"] else 4.0
    for side in (-1, 1):
        x = 15 * side
        if on["Heavy_Makeup"]:
            shadow = tuple(int(v) for v in nu["eye_shadow"])
            d.ellipse(f.box(x - 10, -14, x + 10, -2), fill=shadow)
            d.ellipse(f.box(x + 8 * side - 7, 6, x + 8 * side + 7, 14), fill=(222, 110, 120))
        brow = f.width(3 if on["Male"] else 2)
        d.line(f.xy((x - 9, -16), (x + 8, -17)), fill=c["brows"], width=brow)
        d.ellipse(f.box(x - 7, -6 - eye_h, x + 7, -6 + eye_h), fill=(245, 245, 240))
        iris = min(3.0, eye_h)
        d.ellipse(f.box(x - 3, -6 - iris, x + 3, -6 + iris), fill=(55, 35, 25))
        if on["Heavy_Makeup"]:  # eyeliner
            d.line(f.xy((x - 8, -6 - eye_h), (x + 8, -6 - eye_h)), fill=(10, 10, 10), width=2)
        if on["Eyeglasses"]:
            d.ellipse(f.box(x - 11, -15, x + 11, 3), outline=(20, 20, 24), width=f.width(2))
            d.line(f.xy((x + 11 * side, -8), (x + 21 * side, -10)), fill=(20, 20, 24), width=2)
    if on["Eyeglasses"]:
        d.line(f.xy((-4, -8), (4, -8)), fill=(20, 20, 24), width=f.width(2))


def _mouth(f: _Face, on: dict, c: dict) -> None:
    d, lw = f.draw, f.width(4 if on["Wearing_Lipstick"] else 3)
    d.polygon(f.xy((0, -2), (-6, 14), (6, 14)), fill=c["shadow"])
    if on["Mustache"]:
        d.polygon(f.xy((-16, 24), (-10, 16), (10, 16), (16, 24), (0, 20)), fill=c["beard"])
    if on["Wearing_Lipstick"]:
        d.ellipse(f.box(-12, 24, 12, 32), fill=c["lips"])
    if on["Smiling"] and on["Mouth_Slightly_Open"]:
        d.chord(f.box(-14, 16, 14, 36), 0, 180, fill=c["mouth"], outline=c["lips"], width=lw)
        d.rectangle(f.box(-9, 27, 9, 29), fill=(240, 238, 230))  # teeth
    elif on["Smiling"]:
        d.arc(f.box(-14, 14, 14, 33), 15, 165, fill=c["lips"], width=lw)
    elif on["Mouth_Slightly_Open"]:
        d.ellipse(f.box(-9, 23, 9, 34), fill=c["mouth"], outline=c["lips"], width=lw)
    else:
        d.line(f.xy((-11, 28), (11, 28)), fill=c["lips"], width=lw)


def render(attributes_row, nuisance_row: dict) -> Image.Image:
    """One RGB face, 178 wide × 218 high, drawn from ±1 attributes and one nuisance row."""
    on = {a: bool(v > 0) for a, v in zip(ATTRIBUTES, attributes_row, strict=True)}
    nu = nuisance_row
    t = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
    bg = (1 - t) * nu["bg_top"].astype(np.float32) + t * nu["bg_bottom"].astype(np.float32)
    img = Image.fromarray(np.broadcast_to(bg, (HEIGHT, WIDTH, 3)).astype(np.uint8))
    f = _Face(ImageDraw.Draw(img), nu)
    c = _colours(on, nu)
    _head(f, on, c, nu)
    _eyes(f, on, c, nu)
    _mouth(f, on, c)
    pixels = np.asarray(img, dtype=np.float32)
    for axis in (0, 1):  # a [1 2 1] / 4 blur softens the aliased drawing, as a lens would
        pixels = _smooth(pixels, axis)
    y, x = int(nu["noise_y"]), int(nu["noise_x"])
    pixels += _noise_bank()[y : y + HEIGHT, x : x + WIDTH] * float(nu["noise_sigma"])
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def _smooth(pixels: np.ndarray, axis: int) -> np.ndarray:
    inner, before, after = [[slice(None)] * 3 for _ in range(3)]
    inner[axis], before[axis], after[axis] = slice(1, -1), slice(None, -2), slice(2, None)
    out = pixels.copy()
    neighbours = pixels[tuple(before)] + pixels[tuple(after)]
    out[tuple(inner)] = 0.5 * pixels[tuple(inner)] + 0.25 * neighbours
    return out


def _write_npz(path: Path, arrays: dict) -> None:
    # np.savez stamps the zip entries with the current time; fixed stamps keep files identical
    tmp = path.with_name(f".{path.name}.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(entry, buf.getvalue())
    os.replace(tmp, path)


def truth(root: Path) -> dict:
    """The generator's record: attributes, nuisance arrays, names, n, seed and version."""
    with np.load(Path(root) / TRUTH_FILE, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["attribute_names"] = [str(a) for a in out["attribute_names"]]
    for key, kind in (("n", int), ("seed", int), ("version", str)):
        out[key] = kind(out[key])
    return out


def _up_to_date(root: Path, n: int, seed: int) -> bool:
    try:
        with np.load(root / TRUTH_FILE, allow_pickle=False) as z:
            return (int(z["n"]), int(z["seed"]), str(z["version"])) == (n, seed, VERSION)
    except Exception:  # absent or unreadable: generate again
        return False


def _write_lists(root: Path, attributes: np.ndarray, names: list[str]) -> None:
    # CelebA's layout: count line, names line, then `%2d` values so positives get two spaces
    rows = [" ".join([name, *(f"{v:2d}" for v in attributes[i])]) for i, name in enumerate(names)]
    text = "\n".join([str(len(names)), " ".join(ATTRIBUTES), *rows]) + "\n"
    (root / ATTRIBUTE_FILE).write_bytes(text.encode())  # "\n" endings on every platform
    n = len(names)
    n_train, n_valid = round(0.8 * n), round(0.1 * n)  # CelebA's partition is in file order too
    parts = np.repeat([0, 1, 2], [n_train, n_valid, n - n_train - n_valid])
    lines = [f"{name} {p}" for name, p in zip(names, parts, strict=True)]
    (root / PARTITION_FILE).write_bytes(("\n".join(lines) + "\n").encode())


def write_standin(root: Path, n: int = 12000, seed: int = 0, progress: bool = True) -> Path:
    """Write n stand-in faces in CelebA's layout under `root`; return `root` (book/celeba.md).

    Same (n, seed) gives byte-identical files. Nothing is rewritten when the truth file already
    records this (n, seed, version); it is written last, so an interrupted run is redone.
    """
    root = Path(root)
    if _up_to_date(root, n, seed):
        return root
    readme = root / README_FILE
    ours = readme.exists() and readme.read_text().startswith(README[:30])
    if (root / ATTRIBUTE_FILE).exists() and not ours:  # never overwrite a real CelebA folder
        raise DataError(f"{root} holds {ATTRIBUTE_FILE} but no stand-in {README_FILE}: not touched")
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    readme.write_bytes(README.encode())
    rng = np.random.default_rng(seed)
    attributes = sample_attributes(rng, n)
    nuisance = sample_nuisance(rng, n)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i in tqdm(range(n), desc="stand-in faces", disable=not progress):
        image = render(attributes[i], nuisance_row(nuisance, i))
        image.save(root / IMAGE_DIR / names[i], "JPEG", quality=95)
    _write_lists(root, attributes, names)
    extra = {"attribute_names": np.array(ATTRIBUTES), "n": n, "seed": seed, "version": VERSION}
    _write_npz(root / TRUTH_FILE, {"attributes": attributes, **nuisance, **extra})
    return root
