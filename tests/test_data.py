"""Datasets from generated PNG folders (class-folder and Kaggle layouts): class order, labels
read back from the folder each file is in, 16-bit decoding, disjoint stratified splits and
folds, augmentation without a flip, and bad folders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from cxrexplain import data
from cxrexplain.errors import InvalidInputError

SIZE = 24
# created in this (unsorted) order; the class order must come out sorted
COUNTS = {"PNEUMONIA": 7, "COVID": 4, "NORMAL": 9}


def _write(path: Path, value: int, *, sixteen: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if sixteen else np.uint8
    image = np.full((SIZE + 8, SIZE + 8), value, dtype)
    assert cv2.imwrite(str(path), image)


def _class_value(name: str, index: int) -> int:
    """Each class has its own grey band, so a pixel tells the class (and the file) apart."""
    base = {"COVID": 20, "NORMAL": 100, "PNEUMONIA": 180}[name]
    return base + index


def _class_tree(root: Path, counts: dict[str, int] = COUNTS) -> Path:
    for name, count in counts.items():
        for i in range(count):
            sub = "nested/" if i == 0 else ""  # an image in a sub-folder of its class
            _write(root / name / f"{sub}{name.lower()}_{i:02d}.png", _class_value(name, i))
    (root / "NORMAL" / "notes.txt").write_text("not an image")
    (root / "NORMAL" / ".hidden.png").write_bytes(b"")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return _class_tree(tmp_path / "cxr")


@pytest.fixture
def kaggle(tmp_path: Path) -> Path:
    root = tmp_path / "chest_xray"
    _class_tree(root / "train", {"PNEUMONIA": 10, "NORMAL": 6})
    _class_tree(root / "val", {"PNEUMONIA": 2, "NORMAL": 2})
    _class_tree(root / "test", {"PNEUMONIA": 3, "NORMAL": 4})
    return root


def _contents(dataset: object) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for x, y in dataset:  # type: ignore[attr-defined]
        images.append(np.asarray(x))
        labels.append(np.asarray(y))
    return np.concatenate(images), np.concatenate(labels)


def _class_of(path: str, root: Path) -> str:
    return Path(path).relative_to(root).parts[0]


# ------------------------------------------------------------------------- class folders
def test_class_order_is_sorted_and_labels_follow_the_folders(tree: Path) -> None:
    files = data.list_images(tree)
    assert files.class_names == ("COVID", "NORMAL", "PNEUMONIA")
    assert files.counts() == {"COVID": 4, "NORMAL": 9, "PNEUMONIA": 7}
    for path, label in zip(files.paths, files.labels, strict=True):
        assert _class_of(path, tree) == files.class_names[label]
    assert not any(p.endswith((".txt", ".hidden.png")) for p in files.paths)


def test_image_folder_yields_float_images_and_int_labels(tree: Path) -> None:
    dataset = data.image_folder(tree, image_size=SIZE, batch_size=5, shuffle=False)
    assert dataset.class_names == ["COVID", "NORMAL", "PNEUMONIA"]
    images, labels = _contents(dataset)
    assert images.shape == (20, SIZE, SIZE, 1) and images.dtype == np.float32
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, dataset.labels)
    for image, label, path in zip(images, labels, dataset.file_paths, strict=True):
        name = _class_of(path, tree)
        assert dataset.class_names[label] == name
        index = int(Path(path).stem.split("_")[1])
        np.testing.assert_allclose(image, _class_value(name, index) / 255.0, atol=1e-6)


def test_rgb_output_and_explicit_class_order(tree: Path) -> None:
    dataset = data.image_folder(tree, image_size=(SIZE, SIZE + 4), channels=3,
                                classes=["PNEUMONIA", "COVID"], shuffle=False)
    images, labels = _contents(dataset)
    assert dataset.class_names == ["PNEUMONIA", "COVID"]
    assert images.shape == (11, SIZE, SIZE + 4, 3)
    assert Counter(labels.tolist()) == {0: 7, 1: 4}
    np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_sixteen_bit_png_keeps_its_precision(tmp_path: Path) -> None:
    for name in ("A", "B"):
        _write(tmp_path / name / "x.png", 1000, sixteen=True)
    images, _ = _contents(data.image_folder(tmp_path, image_size=SIZE, shuffle=False))
    np.testing.assert_allclose(images, 1000 / 65535, rtol=1e-5)  # 8-bit would give 3/255


def test_validation_split_is_stratified_disjoint_and_seeded(tree: Path) -> None:
    train, val = data.image_folder(tree, image_size=SIZE, validation_split=0.25, seed=3)
    train_files, val_files = set(train.file_paths), set(val.file_paths)
    assert not train_files & val_files
    assert train_files | val_files == set(data.list_images(tree).paths)
    expected = {name: max(1, round(n * 0.25)) for name, n in COUNTS.items()}
    assert Counter(_class_of(p, tree) for p in val.file_paths) == expected
    again = data.image_folder(tree, image_size=SIZE, validation_split=0.25, seed=3,
                              subset="validation")
    assert again.file_paths == val.file_paths
    other = data.image_folder(tree, image_size=SIZE, validation_split=0.25, seed=4,
                              subset="validation")
    assert other.file_paths != val.file_paths
    only_train = data.image_folder(tree, image_size=SIZE, validation_split=0.25, seed=3,
                                   subset="training")
    assert only_train.file_paths == train.file_paths


def test_training_part_is_shuffled_validation_is_not(tree: Path) -> None:
    train, val = data.image_folder(tree, image_size=SIZE, validation_split=0.3, seed=0,
                                   batch_size=64)
    first = _contents(train)[1].tolist()
    second = _contents(train)[1].tolist()
    assert sorted(first) == sorted(second) == sorted(train.labels.tolist())
    assert first != train.labels.tolist() or second != train.labels.tolist()
    assert _contents(val)[1].tolist() == val.labels.tolist()


# --------------------------------------------------------------------------- Kaggle layout
def test_kaggle_layout_parts(kaggle: Path) -> None:
    assert data.detect_layout(kaggle) == "kaggle"
    assert data.detect_layout(kaggle / "train") == "classes"
    train, val = data.image_folder(kaggle, image_size=SIZE)
    assert train.class_names == val.class_names == ["NORMAL", "PNEUMONIA"]
    assert all("/train/" in p for p in train.file_paths) and len(train.file_paths) == 16
    assert all("/val/" in p for p in val.file_paths) and len(val.file_paths) == 4
    test = data.image_folder(kaggle, image_size=SIZE, subset="test")
    assert len(test.file_paths) == 7 and all("/test/" in p for p in test.file_paths)
    _, labels = _contents(test)
    assert Counter(labels.tolist()) == {0: 4, 1: 3}


def test_kaggle_validation_split_pools_train_and_val_only(kaggle: Path) -> None:
    train, val = data.image_folder(kaggle, image_size=SIZE, validation_split=0.2, seed=0)
    pooled = set(train.file_paths) | set(val.file_paths)
    assert not set(train.file_paths) & set(val.file_paths)
    assert len(pooled) == 20 and not any("/test/" in p for p in pooled)
    assert Counter(val.labels.tolist()) == {0: round(8 * 0.2), 1: round(12 * 0.2)}


# ------------------------------------------------------------------------------- k folds
def test_k_folds_partition_every_file_once_and_stratify(tree: Path) -> None:
    folds = data.k_folds(tree, k=3, seed=1)
    everything = set(data.list_images(tree).paths)
    tests = [set(f.test.paths) for f in folds]
    assert set().union(*tests) == everything
    assert sum(len(t) for t in tests) == len(everything)
    for fold, test in zip(folds, tests, strict=True):
        assert set(fold.train.paths) == everything - test
        for name, n in COUNTS.items():
            assert fold.test.counts()[name] in (n // 3, n // 3 + 1)
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1
    again = data.k_folds(tree, k=3, seed=1)
    assert [f.test.paths for f in again] == [f.test.paths for f in folds]
    assert [f.test.paths for f in data.k_folds(tree, k=3, seed=2)] != \
        [f.test.paths for f in folds]


def test_k_folds_needs_enough_images_per_class(tree: Path) -> None:
    with pytest.raises(InvalidInputError, match="'COVID' has 4 images, fewer than k=5"):
        data.k_folds(tree, k=5)
    with pytest.raises(InvalidInputError, match="k:"):
        data.k_folds(tree, k=1)


# ----------------------------------------------------------------------- grouped k folds
def _patients(seed: int = 0, count: int = 120) -> tuple[data.LabeledFiles, dict[str, str]]:
    """Films of ``count`` patients, 1 to 6 films each; a patient's films share one class but
    for a few with two, and the classes are unbalanced (about 1 : 3 : 4)."""
    rng = np.random.default_rng(seed)
    paths: list[str] = []
    labels: list[int] = []
    patient: dict[str, str] = {}
    for p in range(count):
        label = int(rng.choice(3, p=[0.12, 0.4, 0.48]))
        for film in range(int(rng.integers(1, 7))):
            if film == 2 and p % 10 == 0:
                label = (label + 1) % 3  # a patient seen again with another finding
            path = f"/films/{'ABC'[label]}/p{p}_{film}.png"
            paths.append(path)
            labels.append(label)
            patient[path] = f"patient-{p}"
    return data.LabeledFiles(tuple(paths), tuple(labels), ("A", "B", "C")), patient


def _share_gap(folds: list[data.Fold], files: data.LabeledFiles) -> float:
    """The largest gap between a fold's class share and the whole's."""
    whole = np.bincount(files.label_array, minlength=3) / len(files)
    return max(float(np.abs(np.bincount(f.test.label_array, minlength=3) / len(f.test)
                            - whole).max()) for f in folds)


def _check_grouped(folds: list[data.Fold], files: data.LabeledFiles,
                   group: dict[str, str]) -> None:
    fold_of_group: dict[str, int] = {}
    for fold in folds:
        for path in fold.test.paths:  # no group spans two folds
            assert fold_of_group.setdefault(group[path], fold.index) == fold.index, path
    tests = [set(f.test.paths) for f in folds]
    assert sum(len(t) for t in tests) == len(files)  # every file in exactly one test fold
    assert set().union(*tests) == set(files.paths)
    for fold, test in zip(folds, tests, strict=True):
        assert set(fold.train.paths) == set(files.paths) - test
        assert fold.test.paths == tuple(p for p in files.paths if p in test)  # listed order


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grouped_k_folds_keep_patients_whole_and_stratify(seed: int) -> None:
    files, patient = _patients(seed)
    folds = data.k_folds(files, k=5, seed=seed, groups=patient)
    _check_grouped(folds, files, patient)
    sizes = [len(f.test) for f in folds]
    assert max(sizes) - min(sizes) <= 0.2 * len(files) / 5
    gap = _share_gap(folds, files)
    assert gap < 0.06
    # the same patients dealt to folds at random are far less balanced
    rng = np.random.default_rng(seed)
    names = sorted(set(patient.values()))
    random_gaps = []
    for _ in range(20):
        fold_of = dict(zip(names, rng.permutation(len(names)) % 5, strict=True))
        parts = [np.flatnonzero([fold_of[patient[p]] == i for p in files.paths])
                 for i in range(5)]
        random_gaps.append(_share_gap([data.Fold(i, files, files.subset(part.tolist()))
                                       for i, part in enumerate(parts)], files))
    assert gap < 0.5 * float(np.median(random_gaps))
    again = data.k_folds(files, k=5, seed=seed, groups=patient)
    assert [f.test.paths for f in again] == [f.test.paths for f in folds]
    other = data.k_folds(files, k=5, seed=seed + 10, groups=patient)
    assert [f.test.paths for f in other] != [f.test.paths for f in folds]


def test_ungrouped_k_folds_split_patients() -> None:
    """Why ``groups`` exists: plain stratified folds put one patient's films in several."""
    files, patient = _patients(0)
    folds = data.k_folds(files, k=5, seed=0)
    with pytest.raises(AssertionError):
        _check_grouped(folds, files, patient)


def test_groups_as_callable_and_mapping_keys(tree: Path) -> None:
    files = data.list_images(tree)

    def person(path: str) -> str:  # two films per person: pneumonia_00 and _01 share one
        stem = Path(path).stem
        return f"{stem.split('_')[0]}-{int(stem.split('_')[1]) // 2}"

    by_call = data.k_folds(tree, k=2, seed=3, groups=person)
    _check_grouped(by_call, files, {p: person(p) for p in files.paths})
    relative = {str(Path(p).relative_to(tree)): person(p) for p in files.paths}
    names = {Path(p).name: person(p) for p in files.paths}
    absolute = {Path(p).resolve(): person(p) for p in files.paths}
    inside = {f"cxr/{key}": group for key, group in relative.items()}  # from the parent
    for mapping in (relative, names, absolute, inside):
        folds = data.k_folds(tree, k=2, seed=3, groups=mapping)
        assert [f.test.paths for f in folds] == [f.test.paths for f in by_call]
    # the longest matching key wins over a bare file name
    clash = {**{name: "everyone" for name in names}, **relative}
    folds = data.k_folds(tree, k=2, seed=3, groups=clash)
    assert [f.test.paths for f in folds] == [f.test.paths for f in by_call]


def test_groups_errors(tree: Path) -> None:
    files = data.list_images(tree)
    partial = {p: "x" for p in files.paths[1:]}
    with pytest.raises(InvalidInputError, match=f"groups: no group for '{files.paths[0]}'"):
        data.k_folds(tree, k=2, groups=partial)
    with pytest.raises(InvalidInputError, match=f"no group for '{files.paths[0]}'"):
        data.k_folds(tree, k=2, groups=lambda path: partial[path])
    with pytest.raises(InvalidInputError, match="2 groups, too few for k=3 folds"):
        data.k_folds(tree, k=3, groups=lambda path: path.endswith("0.png"))
    with pytest.raises(InvalidInputError, match="groups: expected a mapping"):
        data.k_folds(tree, k=2, groups=["a", "b"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="not hashable"):
        data.k_folds(tree, k=2, groups=lambda path: [path])
    with pytest.raises(InvalidInputError, match="too few for the validation split"):
        data.stratified_split(files, 0.2, groups=lambda path: "everyone")


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35])
def test_grouped_validation_split(fraction: float) -> None:
    files, patient = _patients(4)
    train, val = data.stratified_split(files, fraction, seed=4, groups=patient)
    assert not {patient[p] for p in train.paths} & {patient[p] for p in val.paths}
    assert sorted(train.paths + val.paths) == sorted(files.paths)
    whole = np.bincount(files.label_array, minlength=3)
    got = np.bincount(val.label_array, minlength=3)
    assert np.abs(got / whole - fraction).max() < 0.05  # each class's share near fraction
    assert abs(len(val) / len(files) - fraction) < 0.03
    again = data.stratified_split(files, fraction, seed=4, groups=patient)
    assert again == (train, val)


@pytest.mark.slow
def test_grouped_k_folds_on_the_real_patients(data_dir: Path) -> None:
    """The 886 films of ``cxr/`` by ``metadata.csv``'s patient (625 patients, 146 with
    several films): whole patients per fold, class shares within a point of the whole."""
    import csv

    root = data_dir / "cxr"
    with (root / "metadata.csv").open(newline="") as table:
        patient = {row["image"]: row["patient"] for row in csv.DictReader(table)}
    files = data.list_images(root)
    by_path = {p: patient[str(Path(p).relative_to(root))] for p in files.paths}
    plain = data.k_folds(root, k=5, seed=0)
    with pytest.raises(AssertionError):  # ungrouped folds share patients
        _check_grouped(plain, files, by_path)
    for seed in (0, 1):
        folds = data.k_folds(root, k=5, seed=seed, groups=patient)
        _check_grouped(folds, files, by_path)
        assert _share_gap(folds, files) < 0.01
        assert max(len(f.test) for f in folds) - min(len(f.test) for f in folds) <= 5
    train, val = data.stratified_split(files, 0.2, seed=0, groups=patient)
    assert not {by_path[p] for p in train.paths} & {by_path[p] for p in val.paths}
    assert abs(len(val) / len(files) - 0.2) < 0.01


# -------------------------------------------------------------------------- augmentation
def _asymmetric(n: int) -> np.ndarray:
    """A bright band on the left third and a dark right side: far from its mirror."""
    image = np.full((32, 32, 1), 0.2, np.float32)
    image[4:28, 3:12] = 0.9
    image[20:26, 16:30] = 0.5
    return np.repeat(image[None], n, axis=0)


@pytest.mark.parametrize("flip", [False, True])
def test_augmentation_never_mirrors_unless_asked(flip: bool) -> None:
    images = _asymmetric(64)
    mirrored = images[:, :, ::-1]
    out = np.asarray(data.Augmentation(flip=flip).layers(seed=5)(images, training=True))
    out = np.clip(out, 0.0, 1.0)
    to_original = np.abs(out - images).mean(axis=(1, 2, 3))
    to_mirror = np.abs(out - mirrored).mean(axis=(1, 2, 3))
    assert not np.allclose(out, images)  # it does change the images
    if flip:
        assert np.any(to_mirror < to_original)  # the check can fail: flips are seen
    else:
        assert np.all(to_original < to_mirror)


def test_augmented_pipeline_changes_training_images_only(tree: Path) -> None:
    train, val = data.image_folder(tree, image_size=SIZE, validation_split=0.3, seed=0,
                                   augment=True, shuffle=False)
    plain = data.image_folder(tree, image_size=SIZE, validation_split=0.3, seed=0,
                              shuffle=False)
    augmented, _ = _contents(train)
    original, _ = _contents(plain[0])
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    assert not np.allclose(augmented, original)
    np.testing.assert_array_equal(_contents(val)[0], _contents(plain[1])[0])


def test_augmentation_rejects_out_of_range_settings() -> None:
    with pytest.raises(InvalidInputError, match="rotation"):
        data.Augmentation(rotation=-1.0)
    with pytest.raises(InvalidInputError, match="flip"):
        data.Augmentation(flip=1)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- bad input
def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="has no images"):
        data.image_folder(tmp_path / "empty", image_size=SIZE)
    (tmp_path / "empty" / "NORMAL").mkdir()
    with pytest.raises(InvalidInputError, match="has no images"):
        data.image_folder(tmp_path / "empty", image_size=SIZE)


def test_one_class(tmp_path: Path) -> None:
    _write(tmp_path / "NORMAL" / "a.png", 10)
    (tmp_path / "PNEUMONIA").mkdir()  # a class folder without images does not count
    with pytest.raises(InvalidInputError, match=r"one class folder.*'NORMAL'"):
        data.image_folder(tmp_path, image_size=SIZE)


def test_images_without_class_folders(tmp_path: Path) -> None:
    _write(tmp_path / "a.png", 10)
    with pytest.raises(InvalidInputError, match="no class folders"):
        data.list_images(tmp_path)


def test_missing_root_and_missing_class(tmp_path: Path, tree: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such folder"):
        data.image_folder(tmp_path / "nope", image_size=SIZE)
    with pytest.raises(InvalidInputError, match="'VIRAL'"):
        data.image_folder(tree, image_size=SIZE, classes=["NORMAL", "VIRAL"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"validation_split": 1.0}, "validation_split"),
        ({"subset": "test"}, "test"),
        ({"subset": "validation"}, "validation_split="),
        ({"subset": "train"}, "subset"),
        ({"image_size": 4}, "image_size"),
        ({"channels": 2}, "channels"),
        ({"batch_size": 0}, "batch_size"),
        ({"augment": "yes"}, "augment"),
    ],
)
def test_bad_arguments(tree: Path, kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"image_size": SIZE, **kwargs}
    with pytest.raises(InvalidInputError, match=match):
        data.image_folder(tree, **args)  # type: ignore[arg-type]


def test_real_data_classes(data_dir: Path) -> None:
    files = data.list_images(data_dir / "cxr", classes=["COVID", "NORMAL", "PNEUMONIA"])
    assert files.counts() == {"COVID": 99, "NORMAL": 399, "PNEUMONIA": 388}


# ------------------------------------------------------------- which folders are classes
def test_real_layout_leaves_the_lung_masks_out(data_dir: Path) -> None:
    """``cxr/lung_masks/COVID/*.png`` beside the class folders is not a fourth class."""
    files = data.list_images(data_dir / "cxr")
    assert files.class_names == ("COVID", "NORMAL", "PNEUMONIA")
    assert files.counts() == {"COVID": 99, "NORMAL": 399, "PNEUMONIA": 388}
    assert dict(files.skipped) == {"lung_masks": "a mask folder: its name contains 'mask'"}
    assert not any("lung_masks" in p for p in files.paths)
    assert all(p.startswith(str(data_dir / "cxr")) for p in files.paths)  # as given
    dataset = data.image_folder(data_dir / "cxr", image_size=SIZE, cache=False)
    assert dataset.class_names == ["COVID", "NORMAL", "PNEUMONIA"]
    assert list(dataset.skipped_folders) == ["lung_masks"]
    with pytest.raises(InvalidInputError, match=r"one class folder with images \('originals'\)"
                                                r".*not classes: 'cxr' \(no images directly"):
        data.list_images(data_dir)


def test_mask_and_deeper_only_folders_are_not_classes(
    tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(tree / "lung_masks" / "COVID" / "covid_00.png", 255)  # a mirror of the layout
    _write(tree / "Masks" / "x.png", 255)  # masks directly in it: still not a class
    _write(tree / "extra" / "deeper" / "y.png", 10)  # images only below
    (tree / "empty").mkdir()
    with caplog.at_level("INFO", logger="cxrexplain.data"):
        files = data.list_images(tree)
    assert files.class_names == ("COVID", "NORMAL", "PNEUMONIA")
    assert dict(files.skipped) == {
        "Masks": "a mask folder: its name contains 'mask'",
        "empty": "no images",
        "extra": "no images directly in it, only in its sub-folders",
        "lung_masks": "a mask folder: its name contains 'mask'",
    }
    assert "classes in" in caplog.text and "COVID (4), NORMAL (9), PNEUMONIA (7)" in caplog.text
    assert "'lung_masks' (a mask folder" in caplog.text
    # splits keep the note; explicit classes take any folder, images at any depth
    train, val = data.image_folder(tree, image_size=SIZE, validation_split=0.25)
    assert set(train.skipped_folders) == set(val.skipped_folders) == {
        "Masks", "empty", "extra", "lung_masks"}
    chosen = data.list_images(tree, classes=["NORMAL", "extra"])
    assert chosen.counts() == {"NORMAL": 9, "extra": 1} and chosen.skipped == ()


def test_no_class_found_names_the_folders_left_out(tmp_path: Path) -> None:
    _write(tmp_path / "patients" / "p1" / "a.png", 10)
    _write(tmp_path / "lung_masks" / "b.png", 10)
    with pytest.raises(InvalidInputError) as info:
        data.list_images(tmp_path)
    message = str(info.value)
    assert "has no class folders" in message
    assert "'lung_masks' (a mask folder" in message
    assert "'patients' (no images directly in it, only in its sub-folders)" in message
    assert "classes=[...]" in message


def test_kaggle_detection_ignores_a_mask_folder_in_train(tmp_path: Path) -> None:
    _write(tmp_path / "train" / "masks" / "a.png", 10)
    assert data.detect_layout(tmp_path) == "classes"
    _class_tree(tmp_path / "train", {"NORMAL": 2, "PNEUMONIA": 2})
    assert data.detect_layout(tmp_path) == "kaggle"
    train = data.image_folder(tmp_path, image_size=SIZE)
    assert train.class_names == ["NORMAL", "PNEUMONIA"]
    assert list(train.skipped_folders) == ["masks"]


# ------------------------------------------------------- one walker for files and folders
def test_class_folders_are_walked_like_find_images(tmp_path: Path) -> None:
    """Hidden files, hidden folders, ``__MACOSX``, odd-case suffixes and linked folders: the
    class listing takes exactly what :func:`cxrexplain.io.find_images` takes, paths as given."""
    import os

    from cxrexplain.io import find_images

    root = _class_tree(tmp_path / "cxr", {"NORMAL": 3, "PNEUMONIA": 3})
    for rel in ("NORMAL/._normal_00.png", "NORMAL/.cache/z.png", "NORMAL/__MACOSX/z.png",
                "PNEUMONIA/.DS_Store", "__MACOSX/NORMAL/z.png", ".git/x.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    _write(root / "PNEUMONIA" / "UPPER.PNG", 180)
    outside = tmp_path / "outside"
    _write(outside / "linked.png", 100)
    os.symlink(outside, root / "NORMAL" / "more")
    files = data.list_images(root)
    assert files.class_names == ("NORMAL", "PNEUMONIA")
    walked = [str(p) for name in files.class_names for p in find_images(root / name)]
    assert list(files.paths) == walked
    assert str(root / "NORMAL" / "more" / "linked.png") in files.paths  # not resolved
    assert str(root / "PNEUMONIA" / "UPPER.PNG") in files.paths
    assert not any("/." in p or "__MACOSX" in p for p in files.paths)
