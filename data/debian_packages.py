"""The Debian packages whose songs :mod:`data.debian_songs` collects: where each keeps its
songs, under which licence, and how a missing one is reported.

The licences are those of each package's ``/usr/share/doc/<package>/copyright`` (for
``freedink-data``, per song, with ``README-REPLACEMENTS.txt``); docs/corpora.md has the
details.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from data.errors import UserError


@dataclass(frozen=True)
class Package:
    """Where a Debian package keeps its songs.

    Attributes:
        name: the Debian package (also the output sub-folder).
        root: the folder its files are installed in.
        files: names (glob patterns for ``kind == "midi"``) of its files inside ``root``.
        kind: "midi" (standard MIDI files, copied) or "wad" (MIDI lumps extracted).
        licence: the songs' licence, from the package's copyright file.
    """

    name: str
    root: str
    files: tuple[str, ...]
    kind: str
    licence: str


# the order decides where a song shared by several packages is written: the first one
PACKAGES: tuple[Package, ...] = (
    Package("simutrans-data", "/usr/share/games/simutrans/music", ("*.mid",), "midi",
            "Artistic-1.0"),
    Package("freedoom", "/usr/share/games/doom", ("freedoom1.wad", "freedoom2.wad"), "wad",
            "BSD-3-Clause (freedoom-license)"),
    Package("freedm", "/usr/share/games/doom", ("freedm.wad",), "wad",
            "BSD-3-Clause (freedoom-license)"),
    Package("freedink-data", "/usr/share/games/dink/dink/Sound", ("*.mid",), "midi",
            "per song: Zlib (the original game's), GPL-3+, public domain, "
            "GPL-3+ or Free Art or CC-BY-SA (README-REPLACEMENTS.txt)"),
    Package("planetblupi-music-midi", "/usr/share/planetblupi/music", ("*.mid",), "midi",
            "GPL-3+"),
    Package("pianobooster", "/usr/share/doc/pianobooster/courses",
            ("*/*.mid", "*/*.mid.gz"), "midi", "CC-BY (music/*)"),
)
PACKAGE_NAMES: tuple[str, ...] = tuple(p.name for p in PACKAGES)


class CollectError(UserError, ValueError):
    """A problem with the collection's inputs or output folder, as one line."""


class PackageMissing(CollectError):  # noqa: N818 -- a missing input, phrased for the user
    """Requested packages whose files are not installed (or not unpacked under a root).

    Attributes:
        packages: the missing package names, in :data:`PACKAGES` order.
    """

    def __init__(self, missing: Sequence[tuple[str, str]],
                 root: str | Path | None = None) -> None:
        self.packages = [name for name, _ in missing]
        names = " ".join(self.packages)
        what = "; ".join(f"{name}: {why}" for name, why in missing)
        one = len(missing) == 1
        subject = (f"package {self.packages[0]} is" if one
                   else f"packages {', '.join(self.packages)} are")
        if root is None:
            super().__init__(f"{subject} not installed (its files are missing: {what}); "
                             f"install {'it' if one else 'them'} with: apt-get install "
                             f"{names}")
        else:
            super().__init__(f"{subject} not unpacked under {root} (its files are missing: "
                             f"{what}); unpack {'it' if one else 'them'} with: apt-get "
                             f"download {names} && for d in *.deb; do dpkg -x \"$d\" "
                             f"{root}; done")


def package_files(package: Package, folder: Path) -> tuple[list[Path], str]:
    """The files of a package in ``folder`` and, when there are none or some are missing,
    why.

    Returns:
        ``(files, problem)``: sorted paths; ``problem`` is "" when every file is there.
    """
    if package.kind == "midi":
        found = sorted({p for pattern in package.files for p in folder.glob(pattern)
                        if p.is_file()})
        problem = "" if found else f"no {' or '.join(package.files)} in {folder}"
        return found, problem
    paths = [folder / name for name in package.files]
    absent = [str(p) for p in paths if not p.is_file()]
    return [p for p in paths if p.is_file()], ", ".join(absent)


def requested(packages: Sequence[str] | None) -> list[Package]:
    """The requested packages in :data:`PACKAGES` order (the order duplicates follow)."""
    if packages is None:
        return list(PACKAGES)
    unknown = [p for p in packages if p not in PACKAGE_NAMES]
    if unknown:
        raise CollectError(f"unknown package(s) {', '.join(unknown)}; known: "
                           f"{', '.join(PACKAGE_NAMES)}")
    if not packages:
        raise CollectError("no package requested")
    return [p for p in PACKAGES if p.name in packages]


def find_packages(chosen: Sequence[Package], roots: Mapping[str, str | Path],
          root: str | Path | None) -> dict[str, tuple[Path, list[Path]]]:
    """Each package's folder and files, or :class:`PackageMissing` naming every missing
    one."""
    unknown_roots = [name for name in roots if name not in PACKAGE_NAMES]
    if unknown_roots:
        raise CollectError(f"roots given for unknown package(s) {', '.join(unknown_roots)}")
    if root is not None and not Path(root).is_dir():
        raise CollectError(f"root {str(root)!r} is not a folder (give the folder where "
                           f"dpkg -x unpacked the packages)")
    found: dict[str, tuple[Path, list[Path]]] = {}
    missing = []
    for package in chosen:
        if package.name in roots:
            folder = Path(roots[package.name])
        elif root is not None:
            folder = Path(root) / package.root.lstrip("/")
        else:
            folder = Path(package.root)
        files, problem = package_files(package, folder)
        if problem:
            missing.append((package.name, problem))
        found[package.name] = (folder, files)
    if missing:
        raise PackageMissing(missing, root)
    return found
