"""Downloads a registered data set and verifies every file's checksum.

Each file is tried at each mirror in turn, checked against its published MD5,
and written atomically; files already present with the right checksum are
kept. Archives (a data set's ``archives``, such as CIFAR-10's tar.gz) are then
extracted into the same location: only regular files and folders, none
outside the location, each file written atomically and left untouched where
it is already there with the same bytes. ``base_url`` points at another
mirror (a local copy, for instance). The files, checksums and mirrors of each
data set are in ``datasets.registry``.
"""

import hashlib
import logging
import os
import pathlib
import tarfile
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence

from lottery_ticket.datasets import registry
from lottery_ticket.foundations import save_restore

logger = logging.getLogger("lottery_ticket")


def mirrors(dataset: str) -> List[str]:
    """The public mirrors of a registered data set.

    Args:
      dataset: a registered data set's name.
    """
    return list(registry.DATASETS.get(dataset).mirrors)


def checksums(dataset: str) -> Dict[str, str]:
    """file name -> published MD5 of a registered data set.

    Args:
      dataset: a registered data set's name.
    """
    return dict(registry.DATASETS.get(dataset).files)


class DownloadError(RuntimeError):
    """No mirror gave a file with the right checksum.

    Args:
      message: what failed, with the file, its mirrors and the fix.
      checksum_mismatches: the URLs that served bytes of another checksum.

    Attributes:
      checksum_mismatches: the URLs that answered with bytes of another
        checksum (a damaged or different file, never written); empty where
        every mirror failed otherwise (unreachable, HTTP errors), so that a
        caller can tell a bad file from a missing connection.
    """

    def __init__(self, message: str, checksum_mismatches: Sequence[str] = ()):
        super().__init__(message)
        self.checksum_mismatches = tuple(checksum_mismatches)


def md5(data: bytes) -> str:
    """Hex MD5 of bytes.

    Args:
      data: the bytes.
    """
    return hashlib.md5(data).hexdigest()


def download_file(filename: str, expected_md5: str, urls: Sequence[str], location: str,
                  timeout: float = 60.0) -> str:
    """Fetches one file from the first mirror that serves it intact.

    Args:
      filename: the file's name, appended to each mirror URL and written under `location`.
      expected_md5: its published MD5.
      urls: the mirrors' base URLs (or local directories), tried in turn.
      location: the directory written to.
      timeout: seconds each request may take.

    Returns:
      The path written.

    Raises:
      DownloadError: every URL failed or served bytes with another checksum;
        the message lists each URL and what went wrong, and
        `checksum_mismatches` the URLs that served other bytes.
    """
    target = os.path.join(location, filename)
    failures, mismatches = [], []
    for base in urls:
        if os.path.isdir(base):  # a plain local directory is a mirror too
            base = pathlib.Path(base).resolve().as_uri()
        url = base.rstrip("/") + "/" + filename
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            failures.append(f"{url}: {error}")
            continue
        got = md5(data)
        if got != expected_md5:
            failures.append(f"{url}: checksum {got}, expected {expected_md5} "
                            f"({len(data)} bytes)")
            mismatches.append(url)
            continue
        save_restore.write_bytes_atomically(target, data)
        logger.info("downloaded %s (%d bytes) from %s", filename, len(data), url)
        return target
    raise DownloadError(
        f"could not download {filename}:\n  " + "\n  ".join(failures) +
        f"\nPlace the file by hand at {target} (MD5 {expected_md5}), or pass "
        "--base_url=URL of a mirror that has it.", checksum_mismatches=mismatches)


def _member_path(archive: str, member: tarfile.TarInfo, location: str) -> str:
    """Where a member goes; DownloadError for one that is not a plain file or folder
    inside the location (absolute, '..', links, devices)."""
    name = os.path.normpath(member.name)
    if not (member.isfile() or member.isdir()):
        raise DownloadError(f"{archive}: refusing to extract {member.name!r}: it is a link "
                            "or a special file, which a data set archive never holds.")
    if os.path.isabs(member.name) or name == ".." or name.startswith(".." + os.sep) \
            or os.path.splitdrive(member.name)[0]:
        raise DownloadError(f"{archive}: refusing to extract {member.name!r}: the path "
                            f"leads outside {location}.")
    return os.path.join(location, name)


def _plan(archive: str, members: Sequence[tarfile.TarInfo], location: str) -> List[str]:
    """Every member's target, once all of them are known to be writable as they
    are: DownloadError, before anything is written, for an unsafe member, a path
    that is a file in one member and a folder in another, or one that would pass
    through a link or land on something else already in the location."""
    targets = [_member_path(archive, member, location) for member in members]
    files = {target for member, target in zip(members, targets) if member.isfile()}
    folders = {target for member, target in zip(members, targets) if member.isdir()}
    root = os.path.abspath(location)
    for target in targets:
        parent = os.path.dirname(target)
        while os.path.abspath(parent) != root and parent:
            folders.add(parent)
            parent = os.path.dirname(parent)
    clash = sorted(files & folders)
    if clash:
        raise DownloadError(f"{archive}: {os.path.relpath(clash[0], location)!r} is both a file "
                            "and a folder in the archive; it is damaged. Delete it and "
                            "download it again.")
    for target in sorted(files | folders):
        relative = os.path.relpath(target, location)
        if os.path.islink(target):
            raise DownloadError(
                f"{archive}: refusing to extract {relative!r}: {target} is a link already "
                "in the location, which extracting would follow. Remove it (or extract "
                "into another location).")
        is_file = target in files
        if os.path.lexists(target) and os.path.isdir(target) == is_file:
            raise DownloadError(
                f"{archive}: refusing to extract {relative!r}: {target} already exists as "
                f"a {'folder' if is_file else 'file'}. Move it away (or extract into "
                "another location).")
    return targets


def extract_archive(archive: str, location: str) -> List[str]:
    """Extracts a tar.gz archive into `location`, safely.

    Every member is checked before anything is written (_plan), so an archive
    with one unsafe member writes nothing, and no link already in the
    location is followed. Files are written atomically; one
    already there with the same bytes is left untouched.

    Args:
      archive: the tar.gz file.
      location: the directory extracted into.

    Returns:
      The paths of the files in the archive.

    Raises:
      DownloadError: the archive is damaged, or a member is a link, a special
        file, a file and a folder at once, or would land outside `location`,
        on a link or on something of another kind.
    """
    files = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            targets = _plan(archive, members, location)
            for member, target in zip(members, targets):
                if member.isdir():
                    os.makedirs(target, exist_ok=True)
                    continue
                data = tar.extractfile(member).read()
                files.append(target)
                if os.path.isfile(target) and os.path.getsize(target) == len(data):
                    with open(target, "rb") as f:
                        if f.read() == data:
                            continue
                try:
                    save_restore.write_bytes_atomically(target, data)
                except OSError as error:
                    raise DownloadError(f"cannot write {target} ({error}).") from error
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DownloadError(f"{archive}: cannot be extracted ({error}); delete it and "
                            "download it again.") from error
    logger.info("extracted %d files from %s", len(files), archive)
    return files


def download(location: str, dataset: str = "mnist", base_url: Optional[str] = None,
             timeout: float = 60.0) -> List[str]:
    """Downloads the files of a registered data set into `location`.

    Args:
      location: directory to write the files into (created if missing).
      dataset: a name in datasets.registry.DATASETS ('mnist', 'fashion_mnist').
      base_url: a mirror to use instead of the public ones: a URL or a local
        directory holding the files.
      timeout: seconds to wait for each connection.

    Returns:
      Paths of the files, then of the files extracted from its archives.

    Raises:
      ValueError: an unknown data set.
      DownloadError: a file could not be had intact from any mirror, or an
        archive could not be extracted safely.
    """
    spec = registry.DATASETS.get(dataset)  # an unknown name lists the known ones
    urls = [base_url] if base_url else list(spec.mirrors)
    os.makedirs(location, exist_ok=True)
    written, failures, mismatches = [], [], []
    for filename, expected in spec.files.items():
        path = os.path.join(location, filename)
        if os.path.isfile(path) and registry.file_md5(path) == expected:
            logger.info("%s is already present and intact.", path)
        else:
            try:
                download_file(filename, expected, urls, location, timeout)
            except DownloadError as error:  # go on: every missing file is named at once
                failures.append(str(error))
                mismatches += error.checksum_mismatches
                continue
        written.append(path)
    if failures:
        raise DownloadError(f"{len(failures)} of {len(spec.files)} files could not be "
                            "downloaded:\n" + "\n".join(failures),
                            checksum_mismatches=mismatches)
    for archive in spec.archives:
        written += extract_archive(os.path.join(location, archive), location)
    spec.verify(location)
    return written

