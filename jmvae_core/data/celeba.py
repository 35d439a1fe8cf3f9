"""CelebA, or the drawn stand-in in the same layout, as standardised tensors (book/celeba.md).

`preprocess` reads the attribute list (and the official partition when asked), crops every
listed image and caches the 64×64 crops in one `.npz` with a JSON manifest beside it. The
default crop is the authors': OpenCV's `haarcascade_frontalface_alt.xml`, box enlarged ×1.3,
negative corners dropped, crop height above 0.4 of the image, every passing detection kept.
`load_celeba` standardises per pixel and channel over the whole set and splits 99% / 1% with
seed 1, as the authors' code does, or by the official partition.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from jmvae_core.data.mnist import DataError
from jmvae_core.environment import data_dir as default_data_dir

IMAGE_DIR = "img_align_celeba"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
CROPS = ("haar", "center")
SPLITS = ("random", "official")
CASCADE = "haarcascade_frontalface_alt.xml"
CACHE_VERSION = 1  # bump when the crops or the cache layout change
STD_FLOOR = 1e-3
SIZE = 64
LAYOUT = (
    f"a CelebA folder must contain {IMAGE_DIR}/ (the aligned JPEGs), {ATTRIBUTE_FILE} "
    f"and, for split='official', {PARTITION_FILE}"
)


class CelebAError(DataError):
    """CelebA files missing or malformed, or options that cannot work; the message says which."""


def _at(path: Path, line: int) -> str:
    return f"{path}, line {line}"


def _lines(path: Path) -> list[str]:
    try:  # latin-1 never fails to decode: odd bytes then fail the field checks, with a line
        return Path(path).read_text(encoding="latin-1").splitlines()
    except OSError as e:
        raise CelebAError(f"{path}: cannot be read ({e}); {LAYOUT}") from e


def _check_header(path: Path, lines: list[str]) -> tuple[int, list[str]]:
    first = lines[0].strip() if lines else ""
    if not first.isdigit():
        raise CelebAError(f"{_at(path, 1)}: expected the number of images, found {first[:60]!r}")
    names = lines[1].split() if len(lines) > 1 else []
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_]+", n) or n.lstrip("-").isdigit()]
    if not names or bad or len(set(names)) != len(names):
        found = lines[1][:60] if len(lines) > 1 else ""
        raise CelebAError(
            f"{_at(path, 2)}: expected the attribute names header (e.g. '5_o_Clock_Shadow "
            f"Arched_Eyebrows ...'), distinct, found {found!r}"
        )
    return int(first), names


def read_attributes(path) -> tuple[list[str], list[str], np.ndarray]:
    """Parse `list_attr_celeba.txt`: a count line, the names, then `file v1 ... vA`, v = ±1."""
    path = Path(path)
    lines = _lines(path)
    count, names = _check_header(path, lines)
    rows = [(k, line.split()) for k, line in enumerate(lines[2:], start=3) if line.strip()]
    for k, fields in rows:
        if len(fields) != len(names) + 1:
            raise CelebAError(
                f"{_at(path, k)}: expected a file name and {len(names)} values, "
                f"found {len(fields)} fields"
            )
    code, size = {"1": 1, "-1": -1}, len(rows) * len(names)  # 0 marks anything else
    flat = np.fromiter((code.get(v, 0) for _, f in rows for v in f[1:]), np.int8, count=size)
    values = flat.reshape(len(rows), len(names))
    if not values.all():
        r, a = np.argwhere(values == 0)[0]
        bad = rows[r][1][a + 1]
        raise CelebAError(f"{_at(path, rows[r][0])}: value {bad!r} of {names[a]} is not 1 or -1")
    if count != len(rows):
        raise CelebAError(f"{_at(path, 1)}: the count line says {count} images, {len(rows)} listed")
    files = [f[0] for _, f in rows]
    if len(set(files)) != len(files):
        raise CelebAError(f"{path}: some image is listed twice")
    return names, files, values


def read_partition(path) -> dict[str, int]:
    """Parse `list_eval_partition.txt`: `file p` per line, p = 0 / 1 / 2 (train/valid/test)."""
    path, out = Path(path), {}
    for k, line in enumerate(_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise CelebAError(f"{_at(path, k)}: expected '<file> <0|1|2>', found {line[:60]!r}")
        if fields[0] in out:
            raise CelebAError(f"{_at(path, k)}: {fields[0]} is listed twice")
        out[fields[0]] = int(fields[1])
    if not out:
        raise CelebAError(f"{path}: lists no image")
    return out


def select_boxes(boxes, image_shape, enlarge=1.3, min_ratio=0.4) -> list[tuple[int, ...]]:
    """The authors' rules for detections (x, y, w, h): enlarge about the centre, drop a negative
    top-left corner, keep when crop height / image height exceeds `min_ratio`; keep all that pass.
    The far corner is clipped to the image, as array slicing in the authors' code clips it."""
    height, width = image_shape[:2]
    kept = []
    for x, y, w, h in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cx, cy, half_w, half_h = x + w / 2, y + h / 2, w * enlarge / 2, h * enlarge / 2
        if cx - half_w < 0 or cy - half_h < 0:
            continue
        corners = np.floor(np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h]) + 0.5)
        x0, y0, x1, y1 = (int(v) for v in np.minimum(corners, [width, height] * 2))
        if (y1 - y0) / height > min_ratio:
            kept.append((x0, y0, x1, y1))
    return kept


_CASCADES: dict = {}


def _cascade():
    import cv2  # lazily: importing this module must not need OpenCV

    if CASCADE not in _CASCADES:
        if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 moved the Haar cascades out
            raise CelebAError(f"OpenCV {cv2.__version__} has no CascadeClassifier; install <5")
        cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, CASCADE))
        if cascade.empty():
            raise CelebAError(f"OpenCV could not load {CASCADE} from {cv2.data.haarcascades}")
        _CASCADES[CASCADE] = cascade
    return _CASCADES[CASCADE]


def _resize(crop: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(np.ascontiguousarray(crop), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def haar_crops(image_rgb: np.ndarray) -> list[np.ndarray]:
    """Every face passing `select_boxes`, as 64×64×3 uint8 (the authors' crop, book/celeba.md)."""
    import cv2

    grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    found = _cascade().detectMultiScale(grey, scaleFactor=1.2, minNeighbors=2, minSize=(10, 10))
    return [_resize(image_rgb[y0:y1, x0:x1]) for x0, y0, x1, y1 in select_boxes(found, grey.shape)]


def center_crop(image_rgb: np.ndarray, size: int = 128) -> np.ndarray:
    """The plain option: a centred square of side `size` (clipped to the image), to 64×64."""
    height, width = image_rgb.shape[:2]
    side = min(size, height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    return _resize(image_rgb[y0 : y0 + side, x0 : x0 + side])


def _decode(raw: bytes, path: Path) -> np.ndarray:
    import cv2  # decoded as the authors' cv2.imread does

    bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise CelebAError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(path) -> np.ndarray:
    """One image file as RGB uint8 (H, W, 3), decoded exactly as `preprocess` decodes it."""
    return _decode(Path(path).read_bytes(), Path(path))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # the lists are 26 MB at most


def _source(folder: Path, split: str, limit) -> dict:
    attr = folder / ATTRIBUTE_FILE
    if not attr.is_file():
        raise CelebAError(f"{attr if folder.is_dir() else folder} does not exist; {LAYOUT}")
    names, files, values = read_attributes(attr)
    src = {"names": names, "files": files[:limit], "values": values[:limit]}
    src["checksums"] = {ATTRIBUTE_FILE: _sha256(attr)}
    if split == "official":
        part_path = folder / PARTITION_FILE
        if not part_path.is_file():
            raise CelebAError(f"{part_path} does not exist; {LAYOUT}")
        partition = read_partition(part_path)
        absent = [f for f in src["files"] if f not in partition]
        if absent:
            raise CelebAError(f"{part_path} does not list {absent[0]} ({len(absent)} absent)")
        src["part"] = np.array([partition[f] for f in src["files"]], dtype=np.int8)
        src["checksums"][PARTITION_FILE] = _sha256(part_path)
    paths = [folder / IMAGE_DIR / f for f in src["files"]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise CelebAError(
            f"{missing[0]} is listed in {ATTRIBUTE_FILE} but missing "
            f"({len(missing)} listed image(s) missing in all)"
        )
    src["sizes"] = [p.stat().st_size for p in paths]
    return src


def _check_options(crop: str, split: str, test_fraction: float) -> None:
    if crop not in CROPS:
        raise CelebAError(f"crop={crop!r} is not one of {CROPS}")
    if split not in SPLITS:
        raise CelebAError(f"split={split!r} is not one of {SPLITS}")
    if not 0 < test_fraction < 1:
        raise CelebAError(f"test_fraction={test_fraction} must lie strictly between 0 and 1")


def _cache_key(options: dict, src: dict) -> str:
    # names and sizes stand in for the image bytes, which only the manifest hashes (too slow
    # to read 1.4 GB on every call); a changed attribute or partition file changes the key
    h = hashlib.sha256(json.dumps([options, src["checksums"]], sort_keys=True).encode())
    listing = zip(src["files"], src["sizes"], strict=True)
    h.update("\n".join(f"{f} {s}" for f, s in listing).encode())
    return h.hexdigest()[:16]


def _crop_all(folder: Path, files: list[str], crop: str, progress: bool):
    """Crops, the source index of each, the number skipped, sha256 of all image bytes."""
    digest, images, index, skipped = hashlib.sha256(), [], [], 0
    for i, name in enumerate(tqdm(files, desc=f"CelebA {crop} crops", disable=not progress)):
        raw = (folder / IMAGE_DIR / name).read_bytes()
        digest.update(raw)  # sha256 of all image bytes concatenated in listed order
        rgb = _decode(raw, folder / IMAGE_DIR / name)
        crops = haar_crops(rgb) if crop == "haar" else [center_crop(rgb)]
        skipped += not crops
        images += crops
        index += [i] * len(crops)
    if not images:
        raise CelebAError(
            f"no face was found in any of the {len(files)} images of {folder} "
            "by the Haar cascade; use crop='center' for images it cannot detect"
        )
    return np.stack(images), np.array(index, dtype=np.int64), skipped, digest.hexdigest()


def _test_mask(n: int, split: str, seed: int, test_fraction: float, part) -> np.ndarray:
    if split == "official":
        return part == 2  # partitions 0 (train) and 1 (valid) both train
    n_test = max(1, round(test_fraction * n))  # the last n_test of a seeded permutation
    is_test = np.zeros(n, dtype=bool)
    is_test[np.random.default_rng(seed).permutation(n)[n - n_test :]] = True
    return is_test


def _save(path: Path, arrays: dict, manifest: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, **arrays)
    os.replace(tmp, path)
    tmp = path.with_name(f".{path.stem}.json.{os.getpid()}.part")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path.with_suffix(".json"))  # last: a cache without manifest is redone


def preprocess(
    data_dir,
    crop="haar",
    split="random",
    seed=1,
    test_fraction=0.01,
    limit=None,
    cache_dir=None,
    progress=True,
) -> Path:
    """Crop every listed image once and cache the crops; return the `.npz` path (book/celeba.md)."""
    _check_options(crop, split, test_fraction)
    folder = Path(data_dir)
    src = _source(folder, split, limit)
    options = {"crop": crop, "split": split, "limit": limit, "version": CACHE_VERSION}
    if split == "random":
        options.update(seed=seed, test_fraction=test_fraction)
    cache = Path(cache_dir) if cache_dir is not None else default_data_dir() / "celeba-cache"
    path = cache / f"celeba-{_cache_key(options, src)}.npz"
    if path.is_file() and path.with_suffix(".json").is_file():
        return path
    start = time.perf_counter()
    images, index, skipped, images_sha = _crop_all(folder, src["files"], crop, progress)
    part = src["part"][index] if split == "official" else None
    is_test = _test_mask(len(index), split, seed, test_fraction, part)
    if is_test.all() or not is_test.any():
        raise CelebAError(f"the {split} split of {len(index)} example(s) leaves a part empty")
    arrays = {"images": images, "attributes": src["values"][index], "source_index": index}
    arrays.update(attribute_names=np.array(src["names"]), is_test=is_test)
    counts = {"listed": len(src["files"]), "used": len(src["files"]) - skipped}
    counts.update(skipped_no_face=skipped, examples=len(index))
    counts.update(train=int((~is_test).sum()), test=int(is_test.sum()))
    _save(path, arrays, _manifest(options, folder, src, images_sha, counts, start))
    return path


def _manifest(options, folder, src, images_sha, counts, start) -> dict:
    import cv2

    return {
        "options": options,
        "data_dir": str(folder.resolve()),
        "sha256": {**src["checksums"], "images": images_sha},
        "counts": counts,
        "opencv": cv2.__version__,
        "seconds": round(time.perf_counter() - start, 3),
    }


@dataclass
class CelebA:
    """Tensors on one device: images (N, 3, 64, 64) standardised, attributes (N, A) as ±1."""

    x_train: torch.Tensor
    w_train: torch.Tensor
    x_test: torch.Tensor
    w_test: torch.Tensor
    attribute_names: list[str]
    mean: np.ndarray  # (3, 64, 64) float32, over train and test together
    std: np.ndarray  # (3, 64, 64) float32, floored at STD_FLOOR
    manifest: dict
    test_hash: str  # sha256 of the test crops (uint8) and attributes (int8)


def _moments(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    # in chunks: the whole of CelebA in float64 would take 20 GB
    total = np.zeros(images.shape[1:], dtype=np.float64)
    squares = np.zeros_like(total)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float64)
        total += block.sum(axis=0)
        squares += np.square(block).sum(axis=0)
    mean = total / len(images)
    std = np.maximum(np.sqrt(np.maximum(squares / len(images) - mean**2, 0)), STD_FLOOR)
    return mean.transpose(2, 0, 1).astype(np.float32), std.transpose(2, 0, 1).astype(np.float32)


def _standardise(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    out = torch.empty((len(images), 3, SIZE, SIZE), dtype=torch.float32)
    m, s = torch.from_numpy(mean), torch.from_numpy(std)
    for start in range(0, len(images), 4096):
        block = torch.from_numpy(images[start : start + 4096]).permute(0, 3, 1, 2).float()
        out[start : start + 4096] = (block - m) / s
    return out


def load_celeba(
    data_dir,
    crop="haar",
    split="random",
    seed=1,
    n_train=None,
    n_test=None,
    device="cpu",
    cache_dir=None,
    limit=None,
    progress=True,
    test_fraction=0.01,
) -> CelebA:
    """Cached crops, standardised per pixel and channel over the whole set, split."""
    path = preprocess(data_dir, crop, split, seed, test_fraction, limit, cache_dir, progress)
    with np.load(path, allow_pickle=False) as z:
        images, attributes, is_test = z["images"], z["attributes"], z["is_test"]
        names = [str(a) for a in z["attribute_names"]]
    mean, std = _moments(images)  # train and test together, as the authors' code does
    train, test = np.flatnonzero(~is_test)[:n_train], np.flatnonzero(is_test)[:n_test]
    digest = hashlib.sha256(images[test].tobytes() + attributes[test].tobytes()).hexdigest()
    return CelebA(
        x_train=_standardise(images[train], mean, std).to(device),
        w_train=torch.from_numpy(attributes[train].astype(np.float32)).to(device),
        x_test=_standardise(images[test], mean, std).to(device),
        w_test=torch.from_numpy(attributes[test].astype(np.float32)).to(device),
        attribute_names=names,
        mean=mean,
        std=std,
        manifest=json.loads(path.with_suffix(".json").read_text()),
        test_hash=digest,
    )


def to_images(x_std, data: CelebA) -> np.ndarray:
    """Undo the standardisation: (N, 3, 64, 64) tensor or array to uint8 (N, 64, 64, 3)."""
    x = x_std.detach().cpu().numpy() if isinstance(x_std, torch.Tensor) else np.asarray(x_std)
    x = x.reshape(-1, 3, SIZE, SIZE) * data.std + data.mean
    return np.clip(np.round(x), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
