"""The built-in demo datasets: deterministic bytes, exact masks, detection, cache, difficulty."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from unetzoo.data import demo, open_dataset, read_image, read_mask

SMALL = {"n": 6, "size": (48, 64)}


def digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def grey(image: np.ndarray) -> np.ndarray:
    """``H×W×3`` uint8 → ``H×W`` integer luma (0..255)."""
    return image.astype(np.int64) @ np.array([299, 587, 114]) // 1000


@pytest.mark.parametrize("classes", [1, 3])
def test_same_seed_same_bytes(tmp_path: Path, classes: int) -> None:
    a = digest(demo.make_shapes(tmp_path / "a", classes=classes, seed=3, **SMALL))
    b = digest(demo.make_shapes(tmp_path / "b", classes=classes, seed=3, **SMALL))
    c = digest(demo.make_shapes(tmp_path / "c", classes=classes, seed=4, **SMALL))
    assert len(a) == SMALL["n"] * (1 + classes) and a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a if k.startswith("images"))


def test_golden_bytes(tmp_path: Path) -> None:
    """Pins the generator's output: a change here needs a new ``demo.VERSION`` (and a new digest)."""
    files = digest(demo.make_shapes(tmp_path, n=2, size=(24, 32), classes=3, seed=0))
    together = hashlib.sha256("".join(f"{k}={v}\n" for k, v in files.items()).encode()).hexdigest()
    assert demo.VERSION == "1"
    assert together == "07863aa64792214dd25eecd701fd881ed659e6cc70dc1bb72d6bab29f1173726"


def edge_contrast(grey_images: np.ndarray, fg: np.ndarray) -> float:
    """Mean grey inside ``fg`` minus that of the 2-pixel ring around it (``N×H×W`` arrays)."""
    near = np.zeros_like(fg)
    for axis, step in ((1, 2), (1, -2), (2, 2), (2, -2)):
        near |= np.roll(fg, step, axis)
    return grey_images[fg].mean() - grey_images[near & ~fg].mean()


def test_masks_match_the_shapes(tmp_path: Path) -> None:
    root = demo.make_shapes(tmp_path, n=12, size=(64, 80), classes=3, seed=0)
    images = np.stack([read_image(root / "images" / f"{i:04d}.png") for i in range(12)])
    layers = np.stack(
        [
            [read_image(root / "masks" / k / f"{i:04d}.png")[..., 0] for k in demo.SHAPE_CLASSES]
            for i in range(12)
        ]
    )
    assert images.shape == (12, 64, 80, 3) and images.dtype == np.uint8
    assert set(np.unique(layers)) == {0, 255}
    inside = layers > 0
    assert inside.sum(1).max() == 1  # each pixel has at most one class
    fg = inside.any(1)
    assert 0.02 < fg.mean() < 0.4 and fg.any((1, 2)).all()
    # shapes are brighter than their surroundings, and the stored edge is exact: a mask moved by one
    # pixel in any direction separates the two clearly worse
    g = grey(images)
    best = edge_contrast(g, fg)
    assert best > 20
    assert all(best > edge_contrast(g, np.roll(fg, s, a)) + 4 for a in (1, 2) for s in (1, -1))


def test_open_dataset_binary(tmp_path: Path) -> None:
    ds = open_dataset(demo.make_shapes(tmp_path, n=5, size=(40, 56)))
    assert len(ds) == 5 and ds.class_names == ["background", "foreground"]
    sample = ds[0]
    assert sample.image.shape == (40, 56, 3) and sample.mask.shape == (40, 56)
    assert set(np.unique(np.stack([s.mask for s in ds]))) == {0, 1}


def test_open_dataset_multiclass(tmp_path: Path) -> None:
    ds = open_dataset(demo.make_shapes(tmp_path, n=10, size=48, classes=3, seed=1))
    assert len(ds) == 10 and ds.class_names == ["background", "ellipse", "rectangle", "triangle"]
    masks = np.stack([s.mask for s in ds])
    assert ds[0].image.shape == (48, 48, 3) and set(np.unique(masks)) == {0, 1, 2, 3}
    layer = read_mask(tmp_path / "masks" / "triangle" / "0003.png")
    assert np.array_equal(layer, masks[3] == 3)


def test_threshold_is_not_enough(tmp_path: Path) -> None:
    """The best intensity threshold, chosen per image with either polarity, stays far below Dice 0.9."""
    ds = open_dataset(demo.make_shapes(tmp_path, n=32, seed=0))
    scores = []
    for s in ds:
        g, fg = grey(s.image), s.mask > 0
        fg_hist = np.bincount(g[fg], minlength=256)
        bg_hist = np.bincount(g[~fg], minlength=256)
        above_fg, above_bg = np.cumsum(fg_hist[::-1])[::-1], np.cumsum(bg_hist[::-1])[::-1]
        below_fg, below_bg = fg.sum() - above_fg, (~fg).sum() - above_bg
        bright = 2 * above_fg / (above_fg + above_bg + fg.sum())
        dark = 2 * below_fg / (below_fg + below_bg + fg.sum())
        scores.append(max(bright.max(), dark.max()))
    assert np.mean(scores) < 0.8


@pytest.fixture
def small_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``UNETZOO_CACHE`` in a temporary folder and small demo specs."""
    monkeypatch.setenv("UNETZOO_CACHE", str(tmp_path))
    for name, spec in demo.DEMOS.items():
        monkeypatch.setitem(demo.DEMOS, name, {**spec, **SMALL})
    return tmp_path / "demo"


def test_cache_is_reused(small_cache: Path) -> None:
    path = demo.demo_dataset()
    assert path == small_cache / f"shapes-v{demo.VERSION}" and (path / demo.MARKER).is_file()
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*")}
    assert demo.demo_dataset("shapes") == path
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*")} == before
    multi = demo.demo_dataset("shapes-multiclass")
    assert len(open_dataset(multi).class_names) == 4
    assert sorted(p.name for p in small_cache.iterdir()) == sorted([path.name, multi.name])


def test_unknown_name(small_cache: Path) -> None:
    with pytest.raises(ValueError, match="shapes, shapes-multiclass"):
        demo.demo_dataset("circles")


def test_incomplete_folder_is_an_error(small_cache: Path) -> None:
    (small_cache / f"shapes-v{demo.VERSION}").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="incomplete"):
        demo.demo_dataset()


def test_lost_race_uses_the_winner(small_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process finishes first while this one generates: its folder is used, no error."""
    make = demo.make_shapes

    def slow_make(root: Path, **spec: object) -> Path:
        monkeypatch.setattr(demo, "make_shapes", make)
        winner = demo.demo_dataset()  # the other process, done first
        (winner / "winner").touch()
        return make(root, **spec)

    monkeypatch.setattr(demo, "make_shapes", slow_make)
    path = demo.demo_dataset()
    assert (path / "winner").is_file() and (path / demo.MARKER).is_file()
    assert [p.name for p in small_cache.iterdir()] == [path.name]


def _create(cache: str, barrier, results) -> None:
    """A spawned process: small specs, then ``demo_dataset`` when both processes are ready."""
    for name, spec in demo.DEMOS.items():
        demo.DEMOS[name] = {**spec, **SMALL}
    barrier.wait()
    results.put(str(demo.demo_dataset(cache_dir=cache)))


def test_concurrent_creation(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_create, args=(str(cache), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    paths = {results.get(timeout=5) for _ in procs}
    target = cache / f"shapes-v{demo.VERSION}"
    assert paths == {str(target)} and [p.name for p in cache.iterdir()] == [target.name]
    expected = digest(demo.make_shapes(tmp_path / "fresh", **{**demo.DEMOS["shapes"], **SMALL}))
    assert {k: v for k, v in digest(target).items() if k != demo.MARKER} == expected
