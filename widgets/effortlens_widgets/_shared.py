"""Fewer widget models per page: equal Layout and Style models shared between widgets.

Every ipywidgets ``DOMWidget`` gets a ``Layout`` model of its own, and most controls a
``Style`` model of their own, even when they are empty: on the return-on-effort page 67 of its
117 models were layouts and styles, most of them equal. Each model is sent to every viewer's
page and built there by the widget manager (state, model object, its events). ipywidgets lets
many widgets share one Layout or Style instance, so :func:`share_layouts_and_styles` gives all
the widgets an app made one shared, frozen instance per distinct value and closes the others.

A shared instance is frozen: setting one of its traits raises a ``TraitError`` (it would
change every widget that shares it). A widget whose layout is changed after it was built
(shown, hidden) must keep its own: :func:`own_layout` marks it.
"""

from __future__ import annotations

import weakref

import ipywidgets as widgets
from ipywidgets.widgets import widget as _widget_module
from traitlets import TraitError, validate

#: Widgets whose layout is changed after they are built: never shared.
_OWN_LAYOUT: weakref.WeakSet = weakref.WeakSet()
#: (frozen class, value) -> the shared instance of that value in this kernel.
_SHARED: dict[tuple, widgets.Widget] = {}
_FROZEN_CLASSES: dict[type, type] = {}


def own_layout(widget: widgets.DOMWidget) -> widgets.DOMWidget:
    """Mark ``widget`` as keeping its own layout (it is shown or hidden later); returns it."""
    _OWN_LAYOUT.add(widget)
    return widget


def _value_traits(cls: type) -> list[str]:
    """The CSS traits of a Layout or Style class (synced, public)."""
    return sorted(
        name
        for name in cls.class_trait_names(sync=True)
        if not name.startswith("_") and name not in {"keys", "comm"}
    )


def _frozen_class(cls: type) -> type:
    """A subclass of ``cls`` whose CSS traits cannot change once it is shared."""
    frozen = _FROZEN_CLASSES.get(cls)
    if frozen is None:
        names = _value_traits(cls)

        def _refuse(self, proposal):
            name = proposal["trait"].name
            if self._el_frozen and proposal["value"] != getattr(self, name):
                raise TraitError(
                    f"This {cls.__name__} is shared by several widgets (effortlens_widgets."
                    f"_shared): give the widget its own before changing {name!r} "
                    "(own_layout)."
                )
            return proposal["value"]

        namespace = {"_el_frozen": False, "_el_refuse": validate(*names)(_refuse)}
        frozen = _FROZEN_CLASSES[cls] = type(f"Shared{cls.__name__}", (cls,), namespace)
    return frozen


def _value(model: widgets.Widget) -> tuple:
    return tuple((name, getattr(model, name)) for name in _value_traits(type(model)))


def _shared(model: widgets.Widget) -> widgets.Widget:
    """The shared, frozen instance equal to ``model`` (made once per kernel)."""
    base = type(model)
    base = next((c for c, f in _FROZEN_CLASSES.items() if f is base), base)
    frozen = _frozen_class(base)
    value = _value(model)
    key = (frozen, value)
    instance = _SHARED.get(key)
    if instance is None or instance.comm is None:  # none yet, or closed (Widget.close_all)
        instance = frozen(**{name: v for name, v in value if v is not None})
        instance._el_frozen = True  # noqa: SLF001 - its own class's flag
        _SHARED[key] = instance
    return instance


def share_layouts_and_styles(made: list[widgets.Widget]) -> int:
    """Give the widgets in ``made`` shared layouts and styles; the number of models closed.

    ``made`` is what an app built (the widgets created while it was built, see
    :func:`widgets_made_since`). A layout or style is then closed only when no live widget of
    the kernel refers to it any more.

    Examples
    --------
    >>> a, b = widgets.HTML("a"), widgets.HTML("b")
    >>> closed = share_layouts_and_styles([a, b])
    >>> a.layout is b.layout and a.style is b.style
    True
    """
    replaced: dict[str, widgets.Widget] = {}
    for w in made:
        if w.comm is None or isinstance(w, widgets.Layout | widgets.Style):
            continue
        for trait in ("layout", "style"):
            if trait == "layout" and w in _OWN_LAYOUT:
                continue
            if not w.has_trait(trait):
                continue
            model = getattr(w, trait)
            if not isinstance(model, widgets.Layout | widgets.Style) or model.comm is None:
                continue
            shared = _shared(model)
            if shared is not model:
                replaced[model.model_id] = model
                w.set_trait(trait, shared)
    if not replaced:
        return 0
    # close only what no live widget refers to any more (a widget outside ``made`` may share it)
    live = _widget_module._instances  # noqa: SLF001 - ipywidgets' registry of live models
    referred = set()
    for w in list(live.values()):
        for trait in ("layout", "style"):
            model = w._trait_values.get(trait)  # noqa: SLF001 - without making a default one
            if isinstance(model, widgets.Widget):
                referred.add(model.model_id)
    closed = 0
    for model_id, model in replaced.items():
        if model_id not in referred:
            model.close()
            closed += 1
    return closed


def live_model_ids() -> set[str]:
    """The ids of every live widget model of this kernel."""
    return set(_widget_module._instances)  # noqa: SLF001


def widgets_made_since(before: set[str]) -> list[widgets.Widget]:
    """The live widgets created after ``before`` (a :func:`live_model_ids` snapshot)."""
    live = _widget_module._instances  # noqa: SLF001
    return [w for model_id, w in list(live.items()) if model_id not in before]
