"""The one table of losses by name -- torch-free, so the CLI and config can read it.

Each entry says how to build the loss and what it needs; ``get_loss``, the fit loop
(which options to pass, whether to compute a weight map or class weights), the
config check, the CLI's ``--loss`` choices and the Train widget all read this table.
Adding a loss is one :func:`register_loss` call (or one entry below).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class LossSpec:
    """How to build one loss and what it needs.

    Attributes
    ----------
    name : str
        The name users type (``--loss NAME``, ``train(loss=NAME)``).
    factory : str or callable
        ``"module:attribute"`` (imported when first built, so this table needs no
        torch) or a callable; called with the options below, returns a
        ``torch.nn.Module`` taking ``(logits, target)`` -- plus ``weight_map`` when
        `weight_map` is True. Shapes: logits ``(N, K, *spatial)``, target
        ``(N, *spatial)``, weight map ``(N, *spatial)``.
    description : str
    weight_map : bool
        Called with the U-Net border weight map of each patch (training computes it).
    class_weights : {"never", "optional", "required"}
        Whether the factory takes ``class_weights=``; "required": training computes
        them from the labels when the user gives none.
    squared_dice : bool
        The factory takes ``squared=`` (a Dice term with a squared denominator option).
    """

    name: str
    factory: str | Callable
    description: str
    weight_map: bool = False
    class_weights: str = "optional"
    squared_dice: bool = False

    def __post_init__(self):
        if self.class_weights not in ("never", "optional", "required"):
            raise ValueError(
                f"class_weights must be 'never', 'optional' or 'required', "
                f"got {self.class_weights!r}"
            )

    def _factory(self) -> Callable:
        if isinstance(self.factory, str):
            module, _, attribute = self.factory.partition(":")
            return getattr(importlib.import_module(module), attribute)
        return self.factory

    def build(self, **options):
        """The loss module, built with `options` (validated by the factory)."""
        return self._factory()(**options)

    def check_options(self, options: dict, reserved=()) -> None:
        """ValueError naming the options the factory does not take, and those it does.

        Checked against the factory's signature without building the loss, so a
        misspelt option stops a training run before its data are prepared.

        Parameters
        ----------
        options : dict
            Keyword options for the factory.
        reserved : collection of str
            Options the caller sets itself: left out of the list the error offers.

        Returns
        -------
        None
        """
        import inspect

        parameters = inspect.signature(self._factory()).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return
        if unknown := sorted(set(options) - set(parameters)):
            offered = [name for name in parameters if name not in reserved]
            raise ValueError(
                f"loss {self.name!r} takes no option {', '.join(map(repr, unknown))}; "
                f"it takes {', '.join(offered) or 'none'}"
            )


_MODULES = "napari_segkit.losses.modules"

#: name -> LossSpec, in the order the CLI and the widgets list them
LOSSES: dict[str, LossSpec] = {}


def register_loss(spec: LossSpec, *, replace: bool = False) -> LossSpec:
    """Add a loss to the table (the CLI, widgets and ``train(loss=...)`` then offer it).

    Parameters
    ----------
    spec : LossSpec
    replace : bool
        Allow replacing an entry of the same name.

    Returns
    -------
    LossSpec
        `spec`, so the call can be used as an expression.

    Examples
    --------
    >>> spec = register_loss(LossSpec("my_ce", f"{_MODULES}:WeightedCrossEntropyLoss", "CE"))
    >>> "my_ce" in loss_names()
    True
    >>> del LOSSES["my_ce"]
    """
    if spec.name in LOSSES and not replace:
        raise ValueError(f"a loss named {spec.name!r} is already registered")
    LOSSES[spec.name] = spec
    return spec


for _spec in (
    LossSpec(
        "dice",
        f"{_MODULES}:SoftDiceLoss",
        "soft Dice (plain or squared denominator)",
        squared_dice=True,
        class_weights="never",
    ),
    LossSpec("ce", f"{_MODULES}:WeightedCrossEntropyLoss", "cross-entropy"),
    LossSpec(
        "weighted_ce",
        f"{_MODULES}:WeightedCrossEntropyLoss",
        "cross-entropy with class weights",
        class_weights="required",
    ),
    LossSpec(
        "border_ce",
        f"{_MODULES}:WeightedCrossEntropyLoss",
        "cross-entropy weighted by U-Net border weight maps",
        weight_map=True,
    ),
    LossSpec("dice+ce", f"{_MODULES}:DiceCELoss", "soft Dice + cross-entropy", squared_dice=True),
    LossSpec(
        "dice+border_ce",
        f"{_MODULES}:DiceCELoss",
        "soft Dice + cross-entropy weighted by U-Net border weight maps",
        weight_map=True,
        squared_dice=True,
    ),
    LossSpec(
        "lovasz",
        f"{_MODULES}:LovaszLoss",
        "Lovasz-softmax: a surrogate of the per-class IoU (Berman et al. 2018)",
        class_weights="never",
    ),
    LossSpec(
        "lovasz+border_ce",
        f"{_MODULES}:LovaszCELoss",
        "Lovasz-softmax + cross-entropy weighted by U-Net border weight maps",
        weight_map=True,
    ),
):
    register_loss(_spec)


def loss_names() -> tuple[str, ...]:
    """The registered loss names, in table order.

    Returns
    -------
    tuple of str
    """
    return tuple(LOSSES)


def get_loss_spec(name: str) -> LossSpec:
    """The table entry for `name`; ValueError listing the valid names otherwise.

    Parameters
    ----------
    name : str

    Returns
    -------
    LossSpec
    """
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}. Available: {', '.join(LOSSES)}")
    return LOSSES[name]


def get_loss(name: str, **options):
    """A loss by name; `options` go to its constructor.

    Parameters
    ----------
    name : str
        A name from :func:`loss_names`.
    **options
        Constructor options, e.g. ``ignore_index``, ``class_weights`` (from
        :func:`napari_segkit.core.weight_maps.compute_class_weights`), ``squared``.

    Returns
    -------
    torch.nn.Module
        Called as ``loss(logits, target)`` (``loss(logits, target, weight_map)`` for
        the border losses) -> scalar tensor.

    Raises
    ------
    ValueError
        Unknown name, invalid options, or class weights missing where required.
    """
    spec = get_loss_spec(name)
    if spec.class_weights == "required" and options.get("class_weights") is None:
        raise ValueError(
            f"loss {name!r} needs class_weights (e.g. compute_class_weights(labels, K))"
        )
    try:
        return spec.build(**options)
    except TypeError as err:
        raise ValueError(f"Invalid options for loss {name!r}: {err}") from err


__all__ = ["LOSSES", "LossSpec", "get_loss", "get_loss_spec", "loss_names", "register_loss"]
