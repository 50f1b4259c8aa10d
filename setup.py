"""Ship the start-up files of the auto-loader into the root of site-packages.

All metadata lives in ``pyproject.toml``; this file only customises
``build_py``, because setuptools has no declarative way to put a file at the
root of ``purelib`` (``data_files`` go under ``sys.prefix``, not
site-packages), and Python only reads ``.pth``/``.start`` files there.

* Regular wheel (``pip install .``): the files are copied into ``build_lib``,
  whose whole tree becomes the wheel's purelib root.
* Editable wheel (``pip install -e .``, PEP 660): setuptools drops whatever
  ``build_py`` writes to ``build_lib`` (the editable wheel only holds its own
  ``__editable__.*`` path hook) but zips every file left in the unpacked wheel
  directory, which it exposes as ``install.install_lib``; that is where it
  puts data/scripts too.  The hook module itself is not copied there: it is a
  ``py-modules`` entry, so setuptools' editable finder maps it to the
  checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SITE_FILES = ("yolo_attn-autoload.pth", "yolo_attn-autoload.start")


class build_py_with_site_files(build_py):
    """``build_py`` that also emits :data:`SITE_FILES` at the purelib root."""

    def _site_dir(self) -> Path:
        if self.editable_mode:
            return Path(self.get_finalized_command("install").install_lib)
        return Path(self.build_lib)

    def run(self) -> None:
        super().run()
        dest = self._site_dir()
        dest.mkdir(parents=True, exist_ok=True)
        for name in SITE_FILES:
            shutil.copyfile(ROOT / name, dest / name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = [] if self.editable_mode else [str(Path(self.build_lib, n)) for n in SITE_FILES]
        return [*super().get_outputs(include_bytecode), *extra]

    def get_source_files(self) -> list[str]:
        # Makes sdists carry the files without a MANIFEST.in.
        return [*super().get_source_files(), *SITE_FILES]


setup(cmdclass={"build_py": build_py_with_site_files})
