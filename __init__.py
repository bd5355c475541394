# coding=utf-8
"""The `bert` package: this repository's modules, installed by `pip install .`.

    from bert import modeling, tokenization, optimization, run_classifier

works as it did with the original's `bert-tensorflow` package. The modules are
written flat (they `import modeling`, `import common`, ... as they do when run
from a clone), so the package gives each of them two names that refer to the
SAME module object: `bert.modeling` and `modeling`. A finder placed first in
`sys.meta_path` serves the flat names of this package's modules from this
directory, and `bert.<name>` as an alias of the flat module: each module's code
runs once (absl flags are defined once), whichever name is imported first.

Name clashes: after `import bert`, the flat names of the package's modules
(e.g. `common`, `runner`, `checkpoints`, `modeling`, `tokenization`) belong to
this package in the whole process. If a different module of one of those names
has already been imported, `import bert` fails with an ImportError naming it.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# The flat modules: every public .py file beside this one.
_FLAT = frozenset(
    f[:-3] for f in os.listdir(_HERE)
    if f.endswith(".py") and not f.startswith("_"))


def _path_of(name):
  return os.path.join(_HERE, name + ".py")


class _AliasLoader(importlib.abc.Loader):
  """Loads `bert.<name>` as the already-loaded (or newly loaded) flat module."""

  def __init__(self, flat_name):
    self._flat_name = flat_name
    self._flat_spec = None

  def create_module(self, spec):
    module = importlib.import_module(self._flat_name)
    self._flat_spec = module.__spec__
    return module

  def exec_module(self, module):
    # The import system has pointed `__spec__` at the alias; the module's own
    # spec stays its flat one (reload etc.).
    module.__spec__ = self._flat_spec


class _FlatModuleFinder(importlib.abc.MetaPathFinder):
  """Serves `<name>` and `<package>.<name>` for this package's modules."""

  def __init__(self, package):
    self._prefix = package + "."

  def find_spec(self, fullname, path=None, target=None):
    del path, target
    if fullname in _FLAT:
      return importlib.util.spec_from_file_location(fullname,
                                                    _path_of(fullname))
    if fullname.startswith(self._prefix):
      flat_name = fullname[len(self._prefix):]
      if flat_name in _FLAT:
        return importlib.util.spec_from_loader(fullname,
                                               _AliasLoader(flat_name))
    return None


def _check_no_clash():
  for name in sorted(_FLAT):
    module = sys.modules.get(name)
    if module is None:
      continue
    origin = getattr(module, "__file__", None)
    if origin is None or not os.path.exists(origin) or not os.path.samefile(
        origin, _path_of(name)):
      raise ImportError(
          "%s: the module name %r is already taken by %s; this package's "
          "modules import each other by their flat names (%s), so it cannot "
          "be loaded beside it. Rename that module or import %s first." %
          (__name__, name, origin or repr(module), ", ".join(sorted(_FLAT)),
           __name__))


def __getattr__(name):  # PEP 562: `bert.modeling` after a bare `import bert`.
  if name in _FLAT:
    return importlib.import_module(__name__ + "." + name)
  raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__():
  return sorted(set(globals()) | _FLAT)


# Imported as a package (`import bert`), not as a flat file of a clone.
if __spec__ is not None and __spec__.submodule_search_locations is not None:
  _check_no_clash()
  if not any(isinstance(f, _FlatModuleFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _FlatModuleFinder(__name__))
