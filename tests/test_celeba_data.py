"""CelebA files, crops, cache and standardisation (book/celeba.md), on a small drawn stand-in."""

import hashlib
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from jmvae_core.data import celeba
from jmvae_core.data.celeba import (
    ATTRIBUTE_FILE,
    IMAGE_DIR,
    PARTITION_FILE,
    CelebAError,
    center_crop,
    haar_crops,
    load_celeba,
    preprocess,
    read_attributes,
    read_image,
    read_partition,
    select_boxes,
    to_images,
)
from jmvae_core.data.mnist import DataError
from jmvae_core.data.standin import (
    ATTRIBUTES,
    TRUTH_FILE,
    nuisance_row,
    render,
    sample_attributes,
    sample_nuisance,
    truth,
    write_standin,
)

N = 60  # 48 train, 6 valid, 6 test in the official partition
CELEBA_40 = """5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips
Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses
Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes
No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling
Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace
Wearing_Necktie Young""".split()


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("standin"), n=N, seed=0, progress=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    a = _files(write_standin(tmp_path / "a", n=12, seed=5, progress=False))
    b = _files(write_standin(tmp_path / "b", n=12, seed=5, progress=False))
    c = _files(write_standin(tmp_path / "c", n=12, seed=6, progress=False))
    assert len(a) == 12 + 4 and a == b
    assert a.keys() == c.keys()
    assert sum(a[k] != c[k] for k in a) >= 12 + 2  # every image, the attributes and the truth


def test_generation_is_skipped_when_up_to_date_and_redone_when_interrupted(tmp_path):
    root = write_standin(tmp_path, n=5, seed=0, progress=False)
    first = root / IMAGE_DIR / "000001.jpg"
    original = first.read_bytes()
    first.write_bytes(b"scribbled")
    write_standin(root, n=5, seed=0, progress=False)
    assert first.read_bytes() == b"scribbled"  # nothing rewritten
    (root / TRUTH_FILE).unlink()  # as if interrupted: the truth file is written last
    write_standin(root, n=5, seed=0, progress=False)
    assert first.read_bytes() == original
    assert truth(root)["n"] == 5 and truth(root)["seed"] == 0


def test_a_folder_that_is_not_a_standin_is_never_overwritten(tmp_path):
    (tmp_path / ATTRIBUTE_FILE).write_text("genuine\n")
    with pytest.raises(DataError, match="not touched"):
        write_standin(tmp_path, n=3, progress=False)
    assert (tmp_path / ATTRIBUTE_FILE).read_text() == "genuine\n"


def test_attribute_and_partition_files_follow_celeba_and_match_the_truth(standin):
    names, files, values = read_attributes(standin / ATTRIBUTE_FILE)
    record = truth(standin)
    assert names == list(ATTRIBUTES) == record["attribute_names"]
    assert len(names) >= 12 and set(names) <= set(CELEBA_40)
    assert names == [a for a in CELEBA_40 if a in names]  # CelebA's column order
    assert files == [f"{i:06d}.jpg" for i in range(1, N + 1)]
    np.testing.assert_array_equal(values, record["attributes"])
    lines = (standin / ATTRIBUTE_FILE).read_text().splitlines()
    assert lines[:2] == [str(N), " ".join(ATTRIBUTES)]
    value = r"(  1| -1)"  # CelebA pads positive values with a second space
    assert all(re.fullmatch(rf"\d{{6}}\.jpg{value}{{{len(names)}}}", line) for line in lines[2:])
    partition = read_partition(standin / PARTITION_FILE)
    assert list(partition) == files
    assert np.bincount(list(partition.values())).tolist() == [48, 6, 6]


def test_sampled_attributes_are_balanced_enough_and_consistent():
    on = sample_attributes(np.random.default_rng(1), 4000) > 0
    col = {name: on[:, k] for k, name in enumerate(ATTRIBUTES)}
    rates = dict(zip(ATTRIBUTES, on.mean(axis=0).round(3), strict=True))
    assert all(0.12 < r < 0.55 for r in rates.values()), rates
    hair = sum(col[c].astype(int) for c in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"))
    assert hair.max() == 1
    assert not (col["Mustache"] & ~col["Male"]).any()
    assert not (col["Bald"] & (col["Bangs"] | (hair > 0))).any()
    assert col["Heavy_Makeup"][col["Male"]].mean() < 0.1 < col["Heavy_Makeup"][~col["Male"]].mean()


def test_every_attribute_changes_the_centre_crop():
    nuisance = sample_nuisance(np.random.default_rng(2), 20)
    base = -np.ones(len(ATTRIBUTES), dtype=np.int8)
    for i in range(20):
        row = nuisance_row(nuisance, i)
        image = render(base, row)
        assert image.size == (178, 218) and image.mode == "RGB"
        plain = np.asarray(image, dtype=int)
        for k, name in enumerate(ATTRIBUTES):
            flipped = base.copy()
            flipped[k] = 1
            diff = np.abs(np.asarray(render(flipped, row), dtype=int) - plain)
            changed = (diff[45:173, 25:153].max(axis=2) > 20).sum()  # the 128×128 centre crop
            assert changed >= 30, (name, i, changed)


def test_center_load_is_standardised_over_the_whole_set(standin, cache):
    data = load_celeba(standin, crop="center", test_fraction=0.1, cache_dir=cache, progress=False)
    a = len(ATTRIBUTES)
    assert data.x_train.shape == (54, 3, 64, 64) and data.x_test.shape == (6, 3, 64, 64)
    assert data.w_train.shape == (54, a) and data.w_test.shape == (6, a)
    assert data.x_train.dtype == torch.float32 and set(data.w_train.unique().tolist()) == {-1, 1}
    assert data.attribute_names == list(ATTRIBUTES)
    assert data.mean.shape == data.std.shape == (3, 64, 64) and data.std.dtype == np.float32
    x = torch.cat([data.x_train, data.x_test])
    assert x.mean(dim=0).abs().max() < 1e-4
    varies = torch.from_numpy(data.std > 1e-3)
    assert varies.float().mean() > 0.99
    assert (x.std(dim=0, unbiased=False)[varies] - 1).abs().max() < 1e-3
    counts = data.manifest["counts"]
    assert counts == dict(listed=N, used=N, skipped_no_face=0, examples=N, train=54, test=6)
    with np.load(preprocess(standin, "center", test_fraction=0.1, cache_dir=cache)) as z:
        source, is_test = z["source_index"], z["is_test"]
    wanted = truth(standin)["attributes"]
    np.testing.assert_array_equal(data.w_train.numpy(), wanted[source[~is_test]])
    np.testing.assert_array_equal(data.w_test.numpy(), wanted[source[is_test]])


def test_random_split_follows_seed_fraction_and_truncation(standin, cache):
    kw = dict(crop="center", cache_dir=cache, progress=False)
    one = load_celeba(standin, **kw)  # 1% of 60 rounds to 0: at least one test example
    assert len(one.x_test) == 1 and len(one.x_train) == N - 1
    a = load_celeba(standin, test_fraction=0.2, seed=1, **kw)
    b = load_celeba(standin, test_fraction=0.2, seed=2, **kw)
    assert len(a.x_test) == len(b.x_test) == 12 and a.test_hash != b.test_hash
    small = load_celeba(standin, test_fraction=0.2, seed=1, n_train=10, n_test=3, **kw)
    assert torch.equal(small.x_train, a.x_train[:10]) and torch.equal(small.w_test, a.w_test[:3])
    assert np.array_equal(small.mean, a.mean)  # statistics stay those of the whole set


def test_official_split_and_images_round_trip(standin, cache):
    data = load_celeba(standin, crop="center", split="official", cache_dir=cache, progress=False)
    assert len(data.x_train) == 48 + 6 and len(data.x_test) == 6  # valid joins train
    np.testing.assert_array_equal(data.w_test.numpy(), truth(standin)["attributes"][54:])
    back = to_images(data.x_test, data)
    assert back.shape == (6, 64, 64, 3) and back.dtype == np.uint8
    for j in range(6):
        crop = center_crop(read_image(standin / IMAGE_DIR / f"{55 + j:06d}.jpg"))
        assert np.abs(back[j].astype(int) - crop).max() <= 1


def test_second_call_uses_the_cache(standin, cache, monkeypatch):
    kw = dict(crop="center", seed=3, cache_dir=cache, progress=False)
    path = preprocess(standin, **kw)
    assert re.fullmatch(r"celeba-[0-9a-f]{16}\.npz", path.name)
    manifest = path.with_suffix(".json")
    stamp = manifest.stat().st_mtime_ns

    def refuse(*_args, **_kwargs):
        raise AssertionError("cropped again")

    monkeypatch.setattr(celeba, "center_crop", refuse)
    assert preprocess(standin, **kw) == path and manifest.stat().st_mtime_ns == stamp
    assert len(load_celeba(standin, **kw).x_test) == 1
    with pytest.raises(AssertionError, match="cropped again"):
        preprocess(standin, **{**kw, "seed": 4})  # other options: another cache entry


def test_manifest_records_checksums_and_versions(standin, cache):
    path = preprocess(standin, crop="center", cache_dir=cache, progress=False)
    manifest = json.loads(path.with_suffix(".json").read_text())
    attr = hashlib.sha256((standin / ATTRIBUTE_FILE).read_bytes()).hexdigest()
    files = [standin / IMAGE_DIR / f"{i:06d}.jpg" for i in range(1, N + 1)]
    images = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
    assert manifest["sha256"] == {ATTRIBUTE_FILE: attr, "images": images}
    assert manifest["options"]["crop"] == "center" and manifest["opencv"].count(".") >= 2
    assert manifest["seconds"] >= 0


def test_missing_image_and_changed_attributes(standin, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(standin, copy)
    (copy / IMAGE_DIR / "000007.jpg").unlink()
    kw = dict(crop="center", cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(CelebAError, match="000007.jpg"):
        preprocess(copy, **kw)
    before = preprocess(copy, limit=5, **kw)  # the missing image is not among the first five
    lines = (copy / ATTRIBUTE_FILE).read_text().splitlines()
    fields = lines[2].split()
    fields[1] = "1" if fields[1] == "-1" else "-1"  # flip one attribute of the first image
    (copy / ATTRIBUTE_FILE).write_text("\n".join([*lines[:2], " ".join(fields), *lines[3:]]))
    assert preprocess(copy, limit=5, **kw) != before  # a changed source misses the cache


GOOD = ["3", "Bald Male Smiling", "000001.jpg -1  1 -1", "000002.jpg  1  1 -1", "a.jpg -1 -1  1"]


@pytest.mark.parametrize(
    "edit, line",
    [
        (lambda ls: ls[:3] + ["000002.jpg  1  1"] + ls[4:], 4),  # wrong field count
        (lambda ls: ls[:4] + ["a.jpg -1 -1  2"], 5),  # a value that is not ±1
        (lambda ls: ["4"] + ls[1:], 1),  # count line disagrees
        (lambda ls: ls[:1] + ls[2:], 2),  # header missing
        (lambda ls: ls[1:], 1),  # count line missing
    ],
)
def test_malformed_attribute_file_names_file_and_line(tmp_path, edit, line):
    path = tmp_path / ATTRIBUTE_FILE
    path.write_text("\n".join(GOOD) + "\n")
    names, files, values = read_attributes(path)
    assert names == ["Bald", "Male", "Smiling"] and files[2] == "a.jpg"
    assert values.tolist() == [[-1, 1, -1], [1, 1, -1], [-1, -1, 1]] and values.dtype == np.int8
    path.write_text("\n".join(edit(GOOD)) + "\n")
    with pytest.raises(CelebAError, match=rf"{ATTRIBUTE_FILE}, line {line}:"):
        read_attributes(path)


def test_windows_line_endings_and_a_trailing_space_after_the_names_parse(tmp_path):
    path = tmp_path / ATTRIBUTE_FILE
    path.write_bytes(("\r\n".join([GOOD[0], GOOD[1] + " ", *GOOD[2:]]) + "\r\n").encode())
    names, files, values = read_attributes(path)
    assert names == ["Bald", "Male", "Smiling"] and files == ["000001.jpg", "000002.jpg", "a.jpg"]


def test_malformed_partition_file_names_file_and_line(tmp_path):
    path = tmp_path / PARTITION_FILE
    path.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(CelebAError, match=rf"{PARTITION_FILE}, line 2:"):
        read_partition(path)


def test_bad_options_and_missing_folder_say_what_is_expected(standin, tmp_path):
    with pytest.raises(CelebAError, match=r"'haar', 'center'"):
        preprocess(standin, crop="middle", cache_dir=tmp_path)
    with pytest.raises(CelebAError, match=r"'random', 'official'"):
        preprocess(standin, split="train", cache_dir=tmp_path)
    with pytest.raises(CelebAError) as info:
        preprocess(tmp_path / "nowhere", cache_dir=tmp_path)
    assert "nowhere" in str(info.value) and IMAGE_DIR in str(info.value)
    assert ATTRIBUTE_FILE in str(info.value)


def test_select_boxes_applies_the_authors_rules():
    shape = (218, 178, 3)
    assert select_boxes([(50, 60, 80, 100)], shape) == [(38, 45, 142, 175)]  # ×1.3 about centre
    assert select_boxes([(5, 5, 40, 40)], shape) == []  # enlarged corner at (-1, -1)
    assert select_boxes([(60, 60, 50, 60)], shape) == []  # 78 / 218 = 0.36 is not above 0.4
    assert select_boxes([(60, 60, 50, 60)], shape, min_ratio=0.3) == [(53, 51, 118, 129)]
    assert select_boxes([(0, 0, 10, 40)], (100, 100), enlarge=1.0) == []  # 0.4 must be exceeded
    assert select_boxes([(0, 0, 10, 41)], (100, 100), enlarge=1.0) == [(0, 0, 10, 41)]
    both = select_boxes([(50, 60, 80, 100), (20, 20, 90, 120)], shape)
    assert both == [(38, 45, 142, 175), (7, 2, 124, 158)]  # every passing detection is kept
    assert select_boxes([(100, 120, 80, 80)], (200, 200)) == [(88, 108, 192, 200)]  # clipped
    assert select_boxes(np.zeros((0, 4)), shape) == []


def test_haar_crops_are_64_square_and_blank_images_have_none():
    rng = np.random.default_rng(0)
    attributes, nuisance = sample_attributes(rng, 6), sample_nuisance(rng, 6)
    for i in range(6):
        crops = haar_crops(np.asarray(render(attributes[i], nuisance_row(nuisance, i))))
        assert isinstance(crops, list)
        assert all(c.shape == (64, 64, 3) and c.dtype == np.uint8 for c in crops)
    assert haar_crops(np.full((218, 178, 3), 128, dtype=np.uint8)) == []


def test_haar_preprocess_keeps_every_detection_and_counts_the_rest(standin, cache):
    found = [
        len(haar_crops(read_image(standin / IMAGE_DIR / f"{i:06d}.jpg"))) for i in range(1, 13)
    ]
    kw = dict(crop="haar", limit=12, test_fraction=0.1, cache_dir=cache, progress=False)
    if sum(found) == 0:
        with pytest.raises(CelebAError, match="no face"):
            preprocess(standin, **kw)
        return
    data = load_celeba(standin, **kw)
    counts = data.manifest["counts"]
    assert counts["examples"] == sum(found) == len(data.x_train) + len(data.x_test)
    assert counts["skipped_no_face"] == found.count(0) and counts["listed"] == 12
    assert data.x_train.shape[1:] == (3, 64, 64)


def test_no_face_anywhere_suggests_the_center_crop(tmp_path):
    (tmp_path / IMAGE_DIR).mkdir()
    for i in range(1, 4):
        grey = Image.new("RGB", (178, 218), (120 + 10 * i,) * 3)
        grey.save(tmp_path / IMAGE_DIR / f"{i:06d}.jpg", quality=95)
    (tmp_path / ATTRIBUTE_FILE).write_text("\n".join(GOOD[:4] + ["000003.jpg -1 -1  1"]) + "\n")
    kw = dict(cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(CelebAError, match="no face.*crop='center'"):
        preprocess(tmp_path, crop="haar", **kw)
    assert len(load_celeba(tmp_path, crop="center", **kw).x_train) == 2


def test_importing_the_loader_does_not_need_opencv():
    code = "import sys, jmvae_core.data.celeba; assert 'cv2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
