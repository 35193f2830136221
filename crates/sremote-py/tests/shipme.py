"""A local module of the tests (not installed anywhere): shipped by source."""
import shiphelper

FACTOR = 1


def multiply(a, b):
    return shiphelper.twice(a) * b // 2 * FACTOR


def shout(text):
    print("shipped says", text)
    return text.upper()


def fails(x):
    y = x + 1
    raise ValueError("bad value %d" % y)
