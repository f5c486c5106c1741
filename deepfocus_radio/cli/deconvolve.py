"""``deepfocus deconvolve``: deconvolve a cube with a network, tile by tile, resumably."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run", "make_client"]

NAME = "deconvolve"
HELP = "Deconvolve a dirty cube (FITS, CASA image or zarr) with a network, out of core."
EXAMPLE = """examples:
  deepfocus deconvolve dirty.fits --model alma --out clean.fits
  deepfocus deconvolve dirty.zarr --model run/best.safetensors --out clean.zarr \\
      --tile 32,128,128 --halo 8,32,32 --scheduler processes --workers 4
  deepfocus deconvolve huge.zarr --out clean.zarr --scheduler tcp://scheduler:8786

Re-running the same command after a kill resumes: blocks already written are skipped.
"""


def add_arguments(parser):
    """Add the options of ``deepfocus deconvolve`` to ``parser``."""
    parser.add_argument("input", help="dirty cube: FITS file, CASA image or zarr store")
    parser.add_argument("--model", default="alma",
                        help="shipped model name or model file (default: alma)")
    parser.add_argument("--out", required=True,
                        help="output: a .zarr store, or a FITS file (any other suffix)")
    parser.add_argument("--tile", metavar="C,Y,X", help="tile size in voxels (default 32,96,96)")
    parser.add_argument("--halo", metavar="C,Y,X", help="halo in voxels (default 8,24,24)")
    parser.add_argument("--batch-size", type=int, default=None, help="tiles per forward pass")
    parser.add_argument("--blend", choices=["crop", "linear"], default=None,
                        help="overlap reconciliation (default crop)")
    parser.add_argument("--scheduler", default="threads",
                        help="threads (default), processes (a local cluster) or the "
                             "tcp://host:port address of a dask.distributed scheduler")
    parser.add_argument("--workers", type=int, default=None,
                        help="threads or worker processes (default: the number of cores)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: CUDA when present, else CPU")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def make_client(scheduler, workers):
    """A dask.distributed Client for ``--scheduler`` (None for ``threads``).

    Raises
    ------
    ConfigError
        If ``scheduler`` is not threads, processes or a tcp:// address.
    """
    from deepfocus_radio.exceptions import ConfigError

    if scheduler == "threads":
        return None
    from distributed import Client, LocalCluster

    if scheduler == "processes":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        return Client(cluster)
    if scheduler.startswith(("tcp://", "tls://", "ucx://")):
        return Client(scheduler)
    raise ConfigError(f"--scheduler {scheduler!r} must be threads, processes or tcp://host:port")


def run(args):
    """Deconvolve and print the output path."""
    from deepfocus_radio.cli.to_zarr import parse_sizes
    from deepfocus_radio.inference import deconvolve

    tile = parse_sizes(args.tile, "--tile")
    halo = parse_sizes(args.halo, "--halo")
    client = make_client(args.scheduler, args.workers)
    try:
        deconvolve(args.input, args.model, tile=tile, halo=halo, batch_size=args.batch_size,
                   blend=args.blend, device=None if args.device == "auto" else args.device,
                   out=args.out, overwrite=args.overwrite, client=client,
                   progress=not args.quiet, threads=args.threads,
                   num_workers=args.workers if client is None else None)
    finally:
        if client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None and args.scheduler == "processes":
                cluster.close()
    print(args.out)
    return 0
