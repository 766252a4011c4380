"""Deal amounts converted into the settings' currency with the export's own rate tables.

Salesforce orgs with several currencies export ``CurrencyType`` (one rate per currency,
against the corporate currency) and, with advanced currency management,
``DatedConversionRate`` (rates valid from ``StartDate`` until ``NextStartDate``). An amount
in currency ``C`` on day ``d`` is ``amount / rate(C, d) * rate(T, d)`` in the target
currency ``T``: the dated rate whose period holds ``d`` (the deal's ``CloseDate``, as
Salesforce converts opportunities), else the ``CurrencyType`` rate.

Examples
--------
>>> rates = RateTables(
...     static={"USD": 1.0, "EUR": 0.9},
...     dated=pl.DataFrame({"currency": ["EUR"], "start": [dt.date(2024, 1, 1)],
...                         "end": [dt.date(2025, 1, 1)], "rate": [0.8]}),
... )
>>> amount, how = rates.convert(pl.Series(["80", "90"]), pl.Series(["EUR", "EUR"]),
...     pl.Series([dt.date(2024, 6, 1), None]), target="USD")
>>> amount.to_list(), how.to_list()
(['100.0', '100.0'], ['dated', 'static'])
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class RateTables:
    """Conversion rates against the corporate currency.

    Attributes
    ----------
    static
        Currency code -> rate (``CurrencyType.ConversionRate``; the corporate currency is 1).
    dated
        ``currency``, ``start`` (date), ``end`` (date, exclusive; null = open) and ``rate``.
    """

    static: dict[str, float] = field(default_factory=dict)
    dated: pl.DataFrame | None = None

    def __bool__(self) -> bool:
        return bool(self.static) or (self.dated is not None and self.dated.height > 0)

    def known(self) -> set[str]:
        """The currencies a rate exists for."""
        codes = set(self.static)
        if self.dated is not None:
            codes |= set(self.dated["currency"].to_list())
        return codes

    def _rates(self, currency: pl.Series, day: pl.Series) -> tuple[pl.Series, pl.Series]:
        frame = pl.DataFrame(
            {"currency": currency.cast(pl.String), "day": day.cast(pl.Date)}
        ).with_row_index("__i")
        dated = pl.Series("rate", [None] * frame.height, dtype=pl.Float64)
        if self.dated is not None and self.dated.height:
            hits = (
                frame.join(self.dated, on="currency", how="inner")
                .filter(
                    (pl.col("day") >= pl.col("start"))
                    & (pl.col("end").is_null() | (pl.col("day") < pl.col("end")))
                )
                .sort("__i", "start")
                .unique("__i", keep="last")
            )
            dated = frame.join(hits.select("__i", "rate"), on="__i", how="left").sort("__i")["rate"]
        static = currency.replace_strict(self.static, default=None, return_dtype=pl.Float64)
        rate = pl.select(pl.coalesce(pl.lit(dated), pl.lit(static))).to_series()
        how = pl.select(
            pl.when(pl.lit(dated).is_not_null())
            .then(pl.lit("dated"))
            .when(pl.lit(static).is_not_null())
            .then(pl.lit("static"))
        ).to_series()
        return rate, how

    def convert(
        self, amount: pl.Series, currency: pl.Series, day: pl.Series, *, target: str
    ) -> tuple[pl.Series, pl.Series]:
        """Amounts (text) in ``target``, and per row how: ``dated``, ``static``, ``same`` or
        null (no rate: the amount is returned unchanged, in its own currency)."""
        n = len(amount)
        rate, how = self._rates(currency, day)
        target_rate, target_how = self._rates(pl.Series([target] * n, dtype=pl.String), day)
        number = amount.cast(pl.Float64, strict=False)
        same = (currency == target).fill_null(False)
        usable = number.is_not_null() & rate.is_not_null() & target_rate.is_not_null() & ~same
        converted = pl.select(
            pl.when(pl.lit(usable))
            .then((pl.lit(number) / pl.lit(rate) * pl.lit(target_rate)).round(6).cast(pl.String))
            .otherwise(pl.lit(amount))
        ).to_series()
        kind = pl.select(
            pl.when(pl.lit(same)).then(pl.lit("same")).when(pl.lit(usable)).then(pl.lit(how))
        ).to_series()
        return converted.alias(amount.name), kind.alias("how")


def rate_tables(
    currency_types: pl.DataFrame | None, dated_rates: pl.DataFrame | None
) -> RateTables:
    """:class:`RateTables` from Salesforce ``CurrencyType`` and ``DatedConversionRate`` rows
    (text columns ``IsoCode``, ``ConversionRate``, ``StartDate``, ``NextStartDate``,
    ``IsActive``; inactive currencies still convert the deals recorded in them)."""
    static: dict[str, float] = {}
    if currency_types is not None and {"IsoCode", "ConversionRate"} <= set(currency_types.columns):
        rows = currency_types.select(
            pl.col("IsoCode").str.to_uppercase(),
            pl.col("ConversionRate").cast(pl.Float64, strict=False),
        ).filter(pl.col("ConversionRate") > 0)
        static = dict(rows.iter_rows())
    dated = None
    if dated_rates is not None and {"IsoCode", "ConversionRate", "StartDate"} <= set(
        dated_rates.columns
    ):
        end = (
            pl.col("NextStartDate")
            if "NextStartDate" in dated_rates.columns
            else pl.lit(None, dtype=pl.String)
        )
        dated = dated_rates.select(
            pl.col("IsoCode").str.to_uppercase().alias("currency"),
            pl.col("StartDate").str.slice(0, 10).str.to_date(strict=False).alias("start"),
            end.str.slice(0, 10).str.to_date(strict=False).alias("end"),
            pl.col("ConversionRate").cast(pl.Float64, strict=False).alias("rate"),
        ).filter(pl.col("start").is_not_null() & (pl.col("rate") > 0))
        # Salesforce writes NextStartDate 9999-12-31 for the current period
        dated = dated.with_columns(
            pl.when(pl.col("end") < dt.date(9999, 1, 1)).then(pl.col("end")).alias("end")
        )
    return RateTables(static=static, dated=dated)
