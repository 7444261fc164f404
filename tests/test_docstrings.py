"""The docstrings of the public API are complete enough to be its reference.

The modules checked are exactly those the API reference documents: every
``automodule`` directive under ``docs/reference/api/``. Every module of the
library's packages is either documented there or listed in ``NOT_IN_REFERENCE``
with the reason, so a new module has to be placed in one or the other.

Public means: a name without a leading underscore, defined in that module (not
imported into it), and for a class its own methods and properties without a
leading underscore. A directive that lists its members (``:members: a, b``)
makes only those the module's public API. For each public function, method and class:

* it has a docstring whose first line is the whole summary (a blank line, or the
  end, follows it);
* every parameter (other than ``self``, ``cls``, ``*args`` and ``**kwargs``) is
  named in an ``Args:`` section (Google style, as napoleon reads it); a class's
  constructor parameters in the class docstring's ``Args:`` or ``Attributes:``
  section (a dataclass's fields), which is what the reference shows (autodoc
  leaves ``__init__``'s docstring out);
* an ``Args:`` entry names a parameter that exists (no stale entries);
* every exception class its own body raises (``raise SomeError(...)``) is named
  in a ``Raises:`` section (a constructor's in the class docstring).
  Not checked: re-raising (``raise``), exceptions made by a helper call
  (``raise make_error()``), raises inside nested functions, and
  ``NotImplementedError`` of an abstract method.

Inherited docstrings count (``inspect.getdoc``): an override that keeps its
base's signature needs no copy of the text.
"""

import ast
import dataclasses
import importlib
import inspect
import os
import pkgutil
import re
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API_DOCS = os.path.join(ROOT, "docs", "reference", "api")
PACKAGES = ("foundations", "experiments", "analysis", "datasets")

# Modules of PACKAGES that the API reference does not document, and why.
NOT_IN_REFERENCE = {
    # Packages that define nothing; their one-line docstrings say what the pages say.
    "lottery_ticket.foundations": "package without members of its own",
    "lottery_ticket.datasets": "package without members of its own",
    # Compatibility shims: they re-export objects documented at their new home.
    "lottery_ticket.foundations.population": "shim: re-exports trainer/training names",
    "lottery_ticket.experiments.population": "shim: old name of experiments.lockstep",
    "lottery_ticket.experiments.registry": "shim: old name of experiments.components",
    # The training engines behind trainer.train and train_population: how a run is
    # compiled and stepped, not an interface a researcher calls. Documented by the
    # package docstring (foundations.training) and their own module docstrings.
    "lottery_ticket.foundations.training.batched": "engine internals",
    "lottery_ticket.foundations.training.overlap": "engine internals",
    "lottery_ticket.foundations.training.cache": "engine internals",
    "lottery_ticket.foundations.training.members": "engine internals",
    "lottery_ticket.foundations.training.record": "engine internals",
    "lottery_ticket.foundations.training.schedule": "engine internals",
    "lottery_ticket.foundations.training.single": "engine internals",
    "lottery_ticket.foundations.training.sparse": "engine internals",
    "lottery_ticket.foundations.training.stacked": "engine internals",
    "lottery_ticket.foundations.training.xla": "engine internals",
}

# qualified name -> reason: objects exempt from the Args and Raises checks. Keep it short.
EXEMPT = {}

_SECTION = re.compile(r"^(\w[\w ]*):\s*$")
_ENTRY = re.compile(r"^\*{0,2}([\w.]+)\s*(\([^)]*\))?\s*:")
_ARG_SECTIONS = ("Args", "Arguments", "Parameters", "Keyword Args", "Keyword Arguments",
                 "Other Parameters")
_ATTR_SECTIONS = ("Attributes",)


def reference_directives():
    """{module name: the members its automodule directive lists, or None for all}."""
    found = {}
    for page in sorted(os.listdir(API_DOCS)):
        if not page.endswith(".md"):
            continue
        with open(os.path.join(API_DOCS, page), encoding="utf-8") as f:
            module = None
            for line in f:
                match = re.match(r"\s*\.\. automodule::\s*(\S+)", line)
                if match:
                    module = match.group(1)
                    found[module] = None
                    continue
                listed = re.match(r"\s*:members:\s*(\S.*)$", line)
                if module and listed:
                    found[module] = {name.strip() for name in listed.group(1).split(",")}
                if not line.strip() or line.startswith("```"):
                    module = None
    return found


def documented_modules():
    """Module names named by an ``automodule`` directive in the API reference pages."""
    return sorted(reference_directives())


def package_modules():
    """Every module of PACKAGES, by its full name."""
    names = []
    for package in PACKAGES:
        full = "lottery_ticket." + package
        names.append(full)
        module = importlib.import_module(full)
        for info in pkgutil.walk_packages(module.__path__, full + "."):
            names.append(info.name)
    return names


def sections(doc):
    """The Google-style sections of a docstring: {title: [entry names]}."""
    found = {}
    lines = doc.expandtabs().splitlines()
    current = None
    indent = None
    for line in lines:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        match = _SECTION.match(line.strip())
        if match and (current is None or depth <= section_depth):
            current = match.group(1)
            section_depth = depth
            indent = None
            found.setdefault(current, [])
            continue
        if current is None:
            continue
        if depth <= section_depth:
            current = None
            continue
        if indent is None:
            indent = depth
        if depth == indent:
            entry = _ENTRY.match(line.strip())
            if entry:
                # 'save_restore.DiskFullError' names DiskFullError.
                found[current].append(entry.group(1).split(".")[-1])
    return found


def named_parameters(function):
    """The parameters a docstring must describe: not self/cls, not *args/**kwargs."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values()
            if p.name not in ("self", "cls")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def public_objects(module, members=None):
    """(qualified name, object, kind) of the public API a module defines.

    `members`: the names the reference lists for the module (None: every public name).
    """
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or members is not None and name not in members:
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj, "class"
            fields = ({field.name for field in dataclasses.fields(obj)}
                      if dataclasses.is_dataclass(obj) else set())
            for attr, value in vars(obj).items():
                # A dataclass field's default (a function, say) is not a method.
                if attr.startswith("_") or attr in fields:
                    continue
                # Methods a base class generates for each subclass (matplotlib's
                # Artist.set) belong to that base's documentation.
                function = getattr(value, "__func__", getattr(value, "fget", value))
                if getattr(function, "__module__", module.__name__) != module.__name__:
                    continue
                qualified = f"{module.__name__}.{name}.{attr}"
                if isinstance(value, (staticmethod, classmethod)):
                    yield qualified, getattr(obj, attr), "method"
                elif inspect.isfunction(value):
                    yield qualified, value, "method"
                elif isinstance(value, property):
                    yield qualified, value, "property"
        elif inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj, "function"


def _class_docs(cls):
    """The docstrings that document a class's constructor: the class's own."""
    return [inspect.getdoc(cls) or ""]


def summary_problems(qualified, doc):
    """A summary that runs over more than one line, as a readable sentence."""
    lines = inspect.cleandoc(doc).splitlines()
    if len(lines) > 1 and lines[1].strip():
        return [f"{qualified}: the summary runs over several lines; make the first "
                "line a one-line summary and go on after a blank line"]
    return []


def problems_of(qualified, obj, kind):
    """What is missing in one object's docstring, as readable sentences."""
    doc = obj.__doc__ if kind == "property" else inspect.getdoc(obj)
    if not doc or not doc.strip():
        return [f"{qualified}: {kind} has no docstring"]
    return summary_problems(qualified, doc) + _parameter_problems(qualified, obj, kind, doc)


def _parameter_problems(qualified, obj, kind, doc):
    """Parameters the docstring leaves out, and Args: entries that name none."""
    if kind == "property":
        return []
    if qualified in EXEMPT:
        return []
    if kind == "class":
        if "__init__" not in vars(obj) and not dataclasses.is_dataclass(obj):
            return []
        if obj.__init__ is object.__init__:
            return []
        params = named_parameters(obj.__init__)
        described = set()
        for text in _class_docs(obj):
            found = sections(text)
            for title in _ARG_SECTIONS + _ATTR_SECTIONS:
                described.update(found.get(title, []))
        where = "the class docstring's Args: (or Attributes:) section"
    else:
        params = named_parameters(obj)
        found = sections(doc)
        described = set()
        for title in _ARG_SECTIONS:
            described.update(found.get(title, []))
        where = "its Args: section"
        stale = sorted(set(described) - set(params))
        if stale and not _takes_kwargs(obj):
            return [f"{qualified}: Args: names {name!r}, which is not a parameter"
                    for name in stale]
    return [f"{qualified}: parameter {name!r} is not described in {where}"
            for name in params if name not in described]


def raised_classes(function):
    """Names of the exception classes a function's own body raises."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return set()
    names = set()
    stack = list(tree.body[0].body) if tree.body else []
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = ast.unparse(raised).split(".")[-1]
            if name[:1].isupper() and name != "NotImplementedError":
                names.add(name)
        stack.extend(ast.iter_child_nodes(node))
    return names


def raises_problems(qualified, obj, kind):
    """Exceptions the code raises that the docstring's Raises: section leaves out."""
    if kind == "property":
        return []
    if kind == "class":
        init = vars(obj).get("__init__")
        if init is None:
            return []
        documented = set()
        for text in _class_docs(obj):
            documented.update(sections(text).get("Raises", []))
        raised = raised_classes(init)
    else:
        documented = set(sections(inspect.getdoc(obj) or "").get("Raises", []))
        raised = raised_classes(obj)
    return [f"{qualified}: raises {name}, which its Raises: section does not name"
            for name in sorted(raised - documented)]


def _takes_kwargs(function):
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters)


def test_every_module_is_in_the_reference_or_excused():
    documented = set(documented_modules())
    missing = [name for name in package_modules()
               if name not in documented and name not in NOT_IN_REFERENCE]
    assert not missing, (
        "modules neither documented under docs/reference/api/ (an automodule directive) "
        f"nor listed in NOT_IN_REFERENCE of {__file__}: {missing}")


def test_reference_names_existing_modules():
    for name in documented_modules():
        importlib.import_module(name)


@pytest.mark.parametrize("module_name", documented_modules())
def test_public_api_docstrings_are_complete(module_name):
    module = importlib.import_module(module_name)
    found = []
    if not (module.__doc__ or "").strip():
        found.append(f"{module_name}: module has no docstring")
    for qualified, obj, kind in public_objects(module, reference_directives()[module_name]):
        found.extend(problems_of(qualified, obj, kind))
        if qualified not in EXEMPT:
            found.extend(raises_problems(qualified, obj, kind))
    assert not found, "incomplete docstrings (Google style, see " + __file__ + "):\n  " + \
        "\n  ".join(found)


def test_sections_reads_google_style():
    doc = """Summary.

    Args:
        alpha (int): first,
            continued.
        beta: second.
        *rest: more.

    Returns:
        gamma: not an argument.
    """
    found = sections(inspect.cleandoc(doc))
    assert found["Args"] == ["alpha", "beta", "rest"]
    assert found["Returns"] == ["gamma"]


def test_an_undocumented_exception_is_named():
    def checks(value):
        """Summary.

        Args:
          value: checked.

        Raises:
          ValueError: a bad value.
        """
        if value is None:
            raise TypeError("no value")
        if value < 0:
            raise ValueError("negative")

    assert raises_problems("m.checks", checks, "function") == [
        "m.checks: raises TypeError, which its Raises: section does not name"]


def test_a_long_summary_is_named():
    def long(value):
        """A summary that goes on
        over a second line.

        Args:
          value: described.
        """

    assert problems_of("m.long", long, "function") == [
        "m.long: the summary runs over several lines; make the first line a one-line "
        "summary and go on after a blank line"]


def test_a_missing_parameter_is_named():
    def documented(alpha, beta):
        """Summary.

        Args:
            alpha: described.
        """
    problems = problems_of("m.documented", documented, "function")
    assert problems == ["m.documented: parameter 'beta' is not described in its Args: section"]
