"""pip / editable install of the Python packages; colcon builds go through CMakeLists.txt."""

from setuptools import setup

setup()
