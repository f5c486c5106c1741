"""predict_tiled on a dask.distributed LocalCluster (2 worker processes) vs local threads."""

import numpy as np
import pytest


@pytest.mark.slow
def test_local_cluster_matches_threads_and_builds_each_model_once(rng, tmp_path):
    import dask.array as da
    from distributed import Client, LocalCluster

    from deepfocus_radio.inference import predict_tiled
    from deepfocus_radio.inference.runner import build_count
    from deepfocus_radio.models import build_model

    model = build_model({"arch": "unet", "dmode": "deconvolver", "spatial_dims": 3,
                         "block_sizes": [4, 8]}, seed=0).eval()
    data = rng.normal(size=(8, 48, 48)).astype(np.float32)
    data[2, 3, 4] = np.nan
    options = dict(tile=(8, 24, 24), halo=(0, 8, 8), batch_size=2, progress=False)
    threaded = predict_tiled(data, model, **options)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    try:
        with Client(cluster) as client:
            distributed = predict_tiled(data, model, client=client, **options)
            lazy = predict_tiled(da.from_array(data, chunks=(8, 24, 24)), model, **options)
            from_client = lazy.compute()  # the active client runs the lazy graph
            stored = predict_tiled(data, model, client=client, out=tmp_path / "d.zarr",
                                   **options)
            stored = np.asarray(stored)
            builds = client.run(build_count)
    finally:
        cluster.close()
    np.testing.assert_allclose(distributed, threaded, rtol=1e-6, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(from_client, threaded, rtol=1e-6, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(stored, threaded, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert np.isnan(distributed[2, 3, 4])
    # each worker built the network once, though it ran many blocks in three jobs
    assert len(builds) == 2 and all(count <= 1 for count in builds.values())
    assert sum(builds.values()) >= 1
