"""ZPL (czmq zconfig) text of a nested dict: how the Python tools write a
daemon's config file. Reading one is quintetctl's (build.config_value).
"""
import re

_ZPL_BARE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def zpl_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
    else:
        text = str(value)
    if _ZPL_BARE.match(text):
        return text
    if '"' in text:
        if "'" in text:
            raise ValueError("ZPL value holds both quote characters: %r" % text)
        return "'%s'" % text
    return '"%s"' % text


def render_zpl(name, tree, indent=0):
    """ZPL (czmq zconfig) text of a nested dict: 4 spaces per level."""
    pad = "    " * indent
    lines = [pad + name]
    for key, value in tree.items():
        key = str(key)
        if not re.match(r"^[A-Za-z0-9$_@.&+/-]+$", key):
            raise ValueError("not a ZPL name: %r" % key)
        if isinstance(value, dict):
            lines.extend(render_zpl(key, value, indent + 1).splitlines())
        else:
            lines.append("%s    %s = %s" % (pad, key, zpl_value(value)))
    return "\n".join(lines) + "\n"


def deep_merge(base, extra):
    """A copy of base with extra merged in (nested dicts merged, rest replaced)."""
    out = dict(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        elif isinstance(value, dict):
            out[key] = deep_merge({}, value)
        else:
            out[key] = value
    return out

