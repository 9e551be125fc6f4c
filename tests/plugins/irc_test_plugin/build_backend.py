"""A minimal PEP 517 / PEP 660 build backend for this test plugin, so that installing it needs
nothing but pip (setuptools without ``wheel`` cannot build editable installs offline).

It reads the name, version and entry points from ``pyproject.toml`` and writes a wheel holding the
``dist-info`` (with ``entry_points.txt``) and either the package (``build_wheel``) or a ``.pth``
file pointing at this folder (``build_editable``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "irc_test_plugin"


def _project() -> dict:
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _dist_name() -> str:
    p = _project()
    return f"{re.sub(r'[-_.]+', '_', p['name'])}-{p['version']}"


def _metadata_files() -> dict[str, str]:
    p = _project()
    info = f"{_dist_name()}.dist-info"
    entry_points = ""
    for group, eps in p.get("entry-points", {}).items():
        entry_points += f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
    return {
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {p['name']}\nVersion: {p['version']}\n"
                             f"Summary: {p.get('description', '')}\n"),
        f"{info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: irc-test-plugin build_backend\n"
                          "Root-Is-Purelib: true\nTag: py3-none-any\n"),
        f"{info}/entry_points.txt": entry_points,
    }


def _write_wheel(wheel_directory: str, files: dict[str, bytes | str]) -> str:
    name = f"{_dist_name()}-py3-none-any.whl"
    record_name = f"{_dist_name()}.dist-info/RECORD"
    records = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            data = data.encode() if isinstance(data, str) else data
            zf.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{arcname},sha256={digest},{len(data)}")
        records.append(f"{record_name},,")
        zf.writestr(record_name, "\n".join(records) + "\n")
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    for arcname, text in _metadata_files().items():
        path = os.path.join(metadata_directory, arcname)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return f"{_dist_name()}.dist-info"


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files: dict[str, bytes | str] = {}
    for fname in sorted(os.listdir(os.path.join(HERE, PACKAGE))):
        if fname.endswith(".py"):
            with open(os.path.join(HERE, PACKAGE, fname), "rb") as f:
                files[f"{PACKAGE}/{fname}"] = f.read()
    files.update(_metadata_files())
    return _write_wheel(wheel_directory, files)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    files: dict[str, bytes | str] = {f"__editable__.{PACKAGE}.pth": HERE + "\n"}
    files.update(_metadata_files())
    return _write_wheel(wheel_directory, files)
