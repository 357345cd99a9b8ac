"""Opening FITS files from a hostile world: read whole and checked before any reader looks at them.

astropy opens FITS files lazily: a truncated data unit surfaces much later, as ``ValueError: cannot
reshape array ...`` from deep inside a reader. :func:`open_fits` reads and checks everything up front
and turns any failure into one InputError that names the file and what is wrong.
"""
from __future__ import annotations

import bz2
import errno
import gzip
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from massmap.errors import InputError
from massmap.io.inputs import check_file, reason


def open_fits(path: str | Path) -> fits.HDUList:
    """Open a FITS file read whole and checked (:func:`check_fits`): one-line InputError for a missing,
    non-FITS, truncated or corrupt file, so readers never meet a lazy astropy error later."""
    p = check_file(path, "FITS file")
    if p.stat().st_size == 0:
        raise InputError(f"FITS file '{p}' is empty (0 bytes)")
    hdul = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns about damage; check_fits says what it is
            hdul = fits.open(p, memmap=False, lazy_load_hdus=True)
            check_fits(hdul, p)
    except BaseException as err:
        if hdul is not None:
            hdul.close()
        if isinstance(err, InputError) or not isinstance(err, Exception):
            raise
        # whatever astropy raises on a damaged file is a property of the file
        raise InputError(f"'{p}' is not a readable FITS file ({reason(err, 80)})") from None
    return hdul


def check_fits(hdul: fits.HDUList, p: Path) -> None:
    """HDU by HDU, each header's data within the file (else: truncated, or an absurd size); no
    non-zero bytes after the last HDU (a damaged extension astropy skipped); then all data read
    (tables column by column)."""
    with open(p, "rb") as fh:
        magic = fh.read(3)
    compressed = magic in (b"\x1f\x8b\x08", b"BZh")  # offsets of .gz/.bz2 refer to the content
    if compressed:  # the whole stream, checksum included: a cut file otherwise reads as fewer HDUs
        try:
            with (gzip.open if magic.startswith(b"\x1f") else bz2.open)(p, "rb") as z:
                while z.read(1 << 24):
                    pass
        except (EOFError, OSError, ValueError) as err:
            raise InputError(f"'{p}' is a truncated or damaged compressed file ({reason(err, 80)})") from None
    size = p.stat().st_size
    end, i = 0, 0
    while True:
        try:
            hdu = hdul[i]
        except IndexError:
            break
        except OSError as err:  # astropy seeks past the data of HDU i as it reads it: an absurd size fails
            if err.errno not in (errno.EINVAL, errno.EFBIG, errno.EOVERFLOW):
                raise
            raise InputError(f"'{p}' is a damaged FITS file: HDU {i} declares a data size larger than any "
                             "file (absurd NAXISn)") from None
        info = hdu.fileinfo()  # (HDUList.fileinfo would read every HDU first)
        end = int(info["datLoc"]) + int(info["datSpan"])
        if end > size and not compressed:
            raise InputError(f"'{p}' is a truncated FITS file ({size} bytes, but its HDU {i} ends at byte {end})")
        i += 1
    if i == 0:
        raise InputError(f"'{p}' is not a FITS file (no header)")
    declared = hdul[0].header.get("NEXTEND")  # written by massmap (and many other writers)
    if isinstance(declared, int) and not isinstance(declared, bool) and i - 1 < declared:
        raise InputError(f"'{p}' is a truncated FITS file: it holds {i - 1} of its NEXTEND = {declared} "
                         "extensions")
    hdul.verify("silentfix")
    if size > end and not compressed:
        with open(p, "rb") as fh:
            fh.seek(end)
            tail = fh.read(1 << 20)
        if tail.strip(b"\0 "):
            raise InputError(f"'{p}' is a damaged FITS file ({size - end} bytes after its last readable HDU: "
                             "a truncated or corrupt extension)")
    for hdu in hdul:
        data = hdu.data
        if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)) and data is not None:
            for name in hdu.columns.names:
                np.asarray(data[name])
