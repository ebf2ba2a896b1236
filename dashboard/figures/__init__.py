"""Pure figure builders: API-shaped data in, Plotly figure dicts out.

    charts.py      which charts the run page draws, and the metrics each one reads
    series.py      scalar charts, the compare chart, sparklines
    histograms.py  heatmaps, quantile bands and distributions
    live.py        live refresh: new points as appends to figures already drawn
    theme.py       colours, axes and the base layout
"""
