import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from training.data import CropDataset


@pytest.fixture
def ramp_folder(tmp_path):
    """One 512x300 photo whose value rises by one step every two pixels from left to right."""
    x = (np.arange(512) // 2).astype(np.uint8)
    img = np.repeat(np.repeat(x[None, :, None], 300, axis=0), 3, axis=2)
    Image.fromarray(img).save(tmp_path / "ramp.png")
    return tmp_path


def horizontal_spans(batch):
    """Per crop: brightest minus darkest value of its middle row, in 8-bit steps."""
    row = batch[:, 0, batch.shape[2] // 2, :].numpy() * 255.0
    return row.max(axis=1) - row.min(axis=1)


def test_plain_crops_keep_the_photo_scale(ramp_folder):
    b = CropDataset(ramp_folder, crop=64, seed=3).batch(16)
    assert b.shape == (16, 3, 64, 64) and b.dtype.is_floating_point
    # 64 pixels cover 31 or 32 steps, depending on where the crop starts
    assert set(np.round(horizontal_spans(b)).tolist()) <= {31.0, 32.0}


def test_rescaled_crops_shrink_a_wider_region(ramp_folder):
    spans = horizontal_spans(CropDataset(ramp_folder, crop=64, seed=3, rescale=0.3).batch(64))
    # a crop cut 64/s wide and shrunk to 64 spans about 31/s steps, s in [0.3, 1]
    assert spans.min() > 25.0 and spans.max() < 31.0 / 0.3 + 6.0
    assert np.median(spans) > 40.0


def test_rescale_is_reproducible_from_the_saved_state(ramp_folder):
    d = CropDataset(ramp_folder, crop=64, seed=5, rescale=0.5)
    d.batch(2)
    state = d.state()
    first = d.batch(4)
    d.set_state(state)
    assert (d.batch(4) == first).all()


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_rescale_outside_0_1_is_refused(ramp_folder, bad):
    with pytest.raises(SystemExit, match="rescale"):
        CropDataset(ramp_folder, crop=64, rescale=bad)


def test_a_photo_smaller_than_the_crop_is_resized_not_refused(tmp_path):
    Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(tmp_path / "small.png")
    b = CropDataset(tmp_path, crop=64, seed=1).batch(3)
    assert b.shape == (3, 3, 64, 64)
    assert np.allclose(b.numpy(), 200 / 255.0, atol=1 / 255.0)


def test_shrunk_batches_do_not_depend_on_the_thread_count(ramp_folder, monkeypatch):
    batches = []
    for threads in ("1", "4"):
        monkeypatch.setenv("SIC_DATA_THREADS", threads)
        batches.append(CropDataset(ramp_folder, crop=64, seed=9, rescale=0.4).batch(12))
    assert (batches[0] == batches[1]).all()


def test_a_bad_thread_count_is_refused_by_name(ramp_folder, monkeypatch):
    monkeypatch.setenv("SIC_DATA_THREADS", "many")
    with pytest.raises(SystemExit, match="SIC_DATA_THREADS"):
        CropDataset(ramp_folder, crop=64, rescale=0.5).batch(2)


def test_each_saved_state_replays_the_next_batch_despite_the_look_ahead(ramp_folder):
    d = CropDataset(ramp_folder, crop=64, seed=11, rescale=0.5)
    for _ in range(3):
        state = d.state()
        b = d.batch_u8(5)
        again = CropDataset(ramp_folder, crop=64, seed=0, rescale=0.5)
        again.set_state(state)
        assert b.dtype == torch.uint8 and b.shape == (5, 64, 64, 3)
        assert (again.batch_u8(5) == b).all()


def test_a_new_batch_size_redraws_the_batch_in_flight(ramp_folder):
    a = CropDataset(ramp_folder, crop=64, seed=4, rescale=0.5)
    a.batch_u8(3)
    wider = a.batch_u8(7)
    b = CropDataset(ramp_folder, crop=64, seed=4, rescale=0.5)
    b.batch_u8(3)
    in_flight = b.batch_u8(3)
    # no crop is skipped: the 7 begin with the 3 that were drawn ahead
    assert (wider[:3] == in_flight).all() and not (wider[3:6] == in_flight).all()


def _eet(entries):
    """A minimal EET archive: header, directory, then the named entries' bytes."""
    n = len(entries)
    head = 12 + 24 * n
    names = b"".join(name.encode() + b"\0" for name, _ in entries)
    body, directory, off, noff = b"", b"", head + len(names), head
    for name, data in entries:
        directory += struct.pack(">6I", off + len(body), len(data), len(data), noff,
                                 len(name) + 1, 0)
        noff += len(name) + 1
        body += data
    return struct.pack(">III", 0x1EE70F42, n, 0) + directory + names + body


def _jpeg(w, h):
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_the_largest_photo_is_taken_out_of_an_edje_file():
    from training.data import largest_jpeg_in_edje
    blob = _eet([("edje/images/1", _jpeg(32, 16)), ("edje/file", b"\x00" * 40),
                 ("edje/images/0", _jpeg(96, 64))])
    assert Image.open(io.BytesIO(largest_jpeg_in_edje(blob))).size == (96, 64)


@pytest.mark.parametrize("blob, why", [
    (b"\x1e\xe7", "too short"),
    (b"PK\x03\x04" + b"\x00" * 20, "not an EET"),
    (bytes.fromhex("1ee70f42") + b"\x7f\xff\xff\xff" + b"\x00" * 8, "runs past the end"),
])
def test_a_broken_edje_file_is_refused_with_the_reason(blob, why):
    from training.data import EdjeError, largest_jpeg_in_edje
    with pytest.raises(EdjeError, match=why):
        largest_jpeg_in_edje(blob)


def test_an_edje_file_without_a_photo_is_refused():
    from training.data import EdjeError, largest_jpeg_in_edje
    blob = _eet([("edje/file", b"\x00" * 40)])
    with pytest.raises(EdjeError, match="no JPEG"):
        largest_jpeg_in_edje(blob)
    # an entry that claims bytes past the end is skipped, not read
    cut = _eet([("edje/images/0", _jpeg(16, 16))])[:-10]
    with pytest.raises(EdjeError, match="no JPEG"):
        largest_jpeg_in_edje(cut)


def test_the_photos_of_a_run_are_described_by_package():
    from training.data import describe_photos
    from training.train import data_of
    d = describe_photos(["mate-backgrounds__Aqua.png", "enlightenment-data__Bamboo.png",
                         "enlightenment-data__Peaks.jpg"])
    assert d.startswith("3 photos from Debian 12 packages mate-backgrounds (1), "
                        "enlightenment-data (2);")
    assert describe_photos(["mine.png", "mate-backgrounds__Aqua.png"]).startswith(
        "2 photos from Debian 12 packages mate-backgrounds (1) and other files (1);")
    old = {"from_step": 0}
    assert data_of([old, {"from_step": 5, "averaged": []}, old]).startswith("41 photos")
    assert data_of([old, {"from_step": 9, "data": d}]).endswith(", then " + d)


def test_excluded_packages_are_left_out_and_other_files_kept(tmp_path):
    for name in ("mate-backgrounds__a.png", "enlightenment-data__b.png", "my-own.png"):
        Image.fromarray(np.zeros((70, 70, 3), np.uint8)).save(tmp_path / name)
    d = CropDataset(tmp_path, crop=64, photos="original")
    assert d.names == ["mate-backgrounds__a.png", "my-own.png"]
    assert len(CropDataset(tmp_path, crop=64, photos="all").names) == 3
    assert len(CropDataset(tmp_path, crop=64).names) == 3


def test_photos_all_without_the_extra_photos_says_how_to_fetch_them(tmp_path):
    Image.fromarray(np.zeros((70, 70, 3), np.uint8)).save(tmp_path / "mate-backgrounds__a.png")
    with pytest.raises(SystemExit, match="training data --extra"):
        CropDataset(tmp_path, crop=64, photos="all")
    assert len(CropDataset(tmp_path, crop=64, photos="original").names) == 1
