"""A local module that imports something no host has."""
import sremote_no_such_module_xyz  # noqa: F401


def f():
    return 1
