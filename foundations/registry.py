"""A small name -> object registry, for data sets, models, optimizers and pruning rules."""

import difflib
from typing import Dict, Generic, Iterable, Iterator, List, Optional, TypeVar

T = TypeVar("T")


def closest(name: str, known: Iterable[str]) -> Optional[str]:
    """The known name most like `name`, if one is close (for 'did you mean').

    Args:
      name: the name given.
      known: the names there are.
    """
    matches = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


class Registry(Generic[T]):
    """Named entries of one kind; an unknown name is an error listing the known ones.

    Example::

        MODELS = Registry("model")
        MODELS.register("fc", build_fc)
        MODELS.get("fc")

    Args:
      kind: what the entries are, as messages name them ('model', 'selection', ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str, entry: T, replace: bool = False) -> T:
        """Adds `entry` under `name`; a name already taken is an error unless `replace`.

        Args:
          name: the entry's name.
          entry: the object registered.
          replace: replace an entry of the same name instead of raising.

        Returns:
          `entry`, so that register can decorate a definition.

        Raises:
          ValueError: `name` is taken and `replace` is False.
        """
        previous = self._entries.get(name)
        # Reloading the module that registers an entry (a notebook's autoreload)
        # registers the same function again: that is a replacement, not a clash.
        reloaded = previous is not None and (
            getattr(previous, "__module__", None), getattr(previous, "__qualname__", None)
        ) == (getattr(entry, "__module__", 0), getattr(entry, "__qualname__", 0))
        if previous is not None and not (replace or reloaded):
            raise ValueError(f"a {self.kind} named {name!r} is already registered; pass "
                             "replace=True to replace it.")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Removes and returns the entry named `name` (e.g. one a test registered).

        Args:
          name: the entry's name.

        Raises:
          ValueError: no such entry.
        """
        entry = self.get(name)
        del self._entries[name]
        return entry

    def get(self, name: str) -> T:
        """The entry named `name`.

        Args:
          name: the entry's name.

        Raises:
          ValueError: no such entry; the message lists the registered names
            and the closest one.
        """
        if name not in self._entries:
            close = closest(name, self._entries)
            hint = f" Did you mean {close!r}?" if close else ""
            raise ValueError(f"unknown {self.kind} {name!r}.{hint} Registered: "
                             f"{', '.join(sorted(self._entries))}.")
        return self._entries[name]

    def names(self) -> List[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
