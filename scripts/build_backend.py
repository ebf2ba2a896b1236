"""The package's build backend: setuptools' own, with one informational note left out.

The source folders map onto the package (client/ is `fadewatch`, server/ is
`fadewatch.server`, ...), so setuptools serves an editable install through an import finder
and, on every `pip install -e .`, prints a note that a folder named like the package in the
working directory could shadow it. No such folder exists here, and pip shows the note as a
build-backend warning. Only that category is silenced: every other warning still shows.
"""

import warnings

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (the PEP 517 and 660 hooks)
from setuptools.warnings import InformationOnly


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InformationOnly)
        return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
