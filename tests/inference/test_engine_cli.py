"""`deepfocus to-zarr` and `deepfocus deconvolve`, called through main()."""

import numpy as np
import pytest

from deepfocus_radio.cli.main import main
from deepfocus_radio.io import open_cube, read_store


@pytest.fixture
def model_file(tmp_path):
    from deepfocus_radio.models import build_model
    from deepfocus_radio.models.checkpoint import save_model

    model = build_model({"arch": "unet", "dmode": "deconvolver", "spatial_dims": 3,
                         "block_sizes": [4, 8]}, seed=0)
    return save_model(model, tmp_path / "tiny.safetensors")


def test_to_zarr_command(fits_cube, cube, tmp_path, capsys):
    dst = tmp_path / "c.zarr"
    assert main(["to-zarr", str(fits_cube), str(dst), "--chunks", "4,16,16", "--quiet"]) == 0
    assert str(dst) in capsys.readouterr().out
    assert read_store(dst).array.chunks == (4, 16, 16)
    np.testing.assert_array_equal(read_store(dst).array[...], cube)
    assert main(["to-zarr", str(fits_cube), str(dst)]) == 1
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(["to-zarr", str(fits_cube), str(dst), "--chunks", "4,x,16"]) == 1
    assert "--chunks '4,x,16' must be integers" in capsys.readouterr().err


def test_deconvolve_command_resumes_after_interrupt(fits_cube, model_file, tmp_path, monkeypatch,
                                                    capsys):
    from deepfocus_radio.inference import store

    args = ["deconvolve", str(fits_cube), "--model", str(model_file), "--tile", "8,16,16",
            "--halo", "0,4,4", "--batch-size", "1", "--workers", "1", "--device", "cpu",
            "--quiet"]
    full = tmp_path / "full.zarr"
    assert main(args + ["--out", str(full)]) == 0
    reference = np.asarray(open_cube(full)._get_filled_data(fill=np.nan))

    original, written = store.write_block, []

    def interrupted(*task_args):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(task_args[3])
        return original(*task_args)

    out = tmp_path / "clean.fits"
    monkeypatch.setattr(store, "write_block", interrupted)
    assert main(args + ["--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err and not out.exists()

    resumed = []

    def counting(*task_args):
        resumed.append(task_args[3])
        return original(*task_args)

    monkeypatch.setattr(store, "write_block", counting)
    assert main(args + ["--out", str(out)]) == 0
    assert resumed and not set(resumed) & set(written)  # written blocks were skipped
    clean = open_cube(out)
    np.testing.assert_allclose(clean.unmasked_data[:].value, reference, rtol=1e-6, atol=1e-7,
                               equal_nan=True)
    assert clean.header["DFSHA256"] and clean.header["DFMODEL"].endswith("tiny.safetensors")


def test_deconvolve_command_errors(fits_cube, tmp_path, capsys):
    from deepfocus_radio.cli.deconvolve import make_client
    from deepfocus_radio.exceptions import ConfigError

    model = tmp_path / "missing.safetensors"
    assert main(["deconvolve", str(fits_cube), "--model", str(model), "--out",
                 str(tmp_path / "o.zarr")]) == 1
    assert "missing.safetensors" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--scheduler 'mpi'"):
        make_client("mpi", 1)
    assert make_client("threads", 2) is None
