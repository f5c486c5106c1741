"""``deepfocus to-zarr``: stream a FITS cube or CASA image into a chunked zarr store."""

__all__ = ["EXAMPLE", "HELP", "NAME", "add_arguments", "run", "parse_sizes"]

NAME = "to-zarr"
HELP = "Convert a FITS cube or CASA image to a compressed, chunked zarr store (streaming)."
EXAMPLE = """examples:
  deepfocus to-zarr dirty.fits dirty.zarr
  deepfocus to-zarr dirty.image dirty.zarr --chunks 16,256,256 --overwrite

The store opens with deepfocus_radio.open_cube (a lazy DaskSpectralCube) or
xarray.open_zarr (dims chan, y, x); the header, beam and unit are in its attributes.
"""


def parse_sizes(text, option):
    """Parse ``"c,y,x"`` (or one integer) into a tuple of ints for ``option``.

    Raises
    ------
    ConfigError
        If ``text`` is not comma-separated integers.
    """
    from deepfocus_radio.exceptions import ConfigError

    if text is None:
        return None
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} {text!r} must be integers separated by commas, "
                          "e.g. 16,256,256") from None
    return values[0] if len(values) == 1 else values


def add_arguments(parser):
    """Add the options of ``deepfocus to-zarr`` to ``parser``."""
    parser.add_argument("src", help="FITS file (2D/3D/4D) or CASA image directory")
    parser.add_argument("dst", help="zarr store to create (a directory)")
    parser.add_argument("--chunks", metavar="C,Y,X", default=None,
                        help="chunk shape in (chan, y, x) order (default 16,256,256)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    """Convert and print the store's path."""
    from deepfocus_radio.io import fits_to_zarr

    chunks = parse_sizes(args.chunks, "--chunks")
    chunks = (chunks,) * 3 if isinstance(chunks, int) else chunks
    path = fits_to_zarr(args.src, args.dst, chunks=chunks, overwrite=args.overwrite,
                        progress=not args.quiet)
    print(path)
    return 0
