"""Prophet and statsforecast's MSTL + AutoETS on the forecaster bench's origins.

Run by `cargo bench -p windsock-forecaster --bench forecast` in the virtual environment it
creates (see requirements.txt). Reads the histories the bench wrote, one CSV row per hour
(`series,ds,y`: `series` names a dataset and an origin), and writes, for each series and
model, 24 hourly forecasts with their 95% intervals and the seconds the model took to fit
and predict that series alone (`series,model,step,yhat,lower,upper,seconds`).

Usage: python baselines.py HISTORIES.csv FORECASTS.csv HORIZON
"""

import csv
import logging
import sys
import time
import warnings

import pandas as pd

warnings.filterwarnings("ignore")
for name in ("prophet", "cmdstanpy"):
    logging.getLogger(name).setLevel(logging.ERROR)


def prophet_forecasts(history, horizon):
    from prophet import Prophet

    logging.getLogger("cmdstanpy").disabled = True
    started = time.perf_counter()
    model = Prophet(interval_width=0.95)
    model.fit(history)
    future = model.make_future_dataframe(periods=horizon, freq="h", include_history=False)
    forecast = model.predict(future)
    seconds = time.perf_counter() - started
    return forecast["yhat"], forecast["yhat_lower"], forecast["yhat_upper"], seconds


def statsforecast_forecasts(history, horizon):
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS

    frame = history.assign(unique_id="series")
    started = time.perf_counter()
    model = StatsForecast(
        models=[MSTL(season_length=24, trend_forecaster=AutoETS(model="ZZN"))], freq="h"
    )
    forecast = model.forecast(df=frame, h=horizon, level=[95])
    seconds = time.perf_counter() - started
    return forecast["MSTL"], forecast["MSTL-lo-95"], forecast["MSTL-hi-95"], seconds


def main():
    source, target, horizon = sys.argv[1], sys.argv[2], int(sys.argv[3])
    histories = pd.read_csv(source, parse_dates=["ds"])
    models = {"prophet": prophet_forecasts, "statsforecast_mstl_autoets": statsforecast_forecasts}
    # The first fit of each compiles (numba, cmdstan's model load): untimed.
    first = histories[histories.series == histories.series.iloc[0]][["ds", "y"]]
    for fit in models.values():
        fit(first, horizon)
    with open(target, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["series", "model", "step", "yhat", "lower", "upper", "seconds"])
        for series, rows in histories.groupby("series", sort=False):
            history = rows[["ds", "y"]].reset_index(drop=True)
            for name, fit in models.items():
                try:
                    yhat, lower, upper, seconds = fit(history, horizon)
                except Exception as err:  # a failed fit is reported, not fatal
                    print(f"{name} failed on {series}: {err}", file=sys.stderr)
                    continue
                for step, (p, lo, hi) in enumerate(zip(yhat, lower, upper)):
                    writer.writerow([series, name, step, p, lo, hi, seconds])


if __name__ == "__main__":
    main()
