"""Hand-made layers that the GeoPackage and PostGIS workspace tests both write and compare."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pandas as pd
import shapely

PENGJIANG = (112.9, 22.45, 113.25, 22.85)
PROV = {"synthetic": True, "source": "test", "method": "hand-made"}


def markers() -> gpd.GeoDataFrame:
    """A layer using every field type: string, integer, date, plus nulls."""
    return gpd.GeoDataFrame(
        {
            "marker_id": ["M1", "M2"],
            "number": ["0304001Q", "0304002Q"],
            "line_id": ["L0304", "L0304"],
            "line_name": ["蓬江区—江海区", None],
            "side_a_adcode": ["440703", "440703"],
            "side_b_adcode": ["440704", "440704"],
            "marker_type": ["single", "single"],
            "status": ["intact", "missing"],
            "emplaced_year": pd.array([2001, None], dtype="Int64"),
            "last_inspected": [dt.date(2021, 5, 6), None],
        },
        geometry=[shapely.Point(113.1, 22.6), shapely.Point(113.11, 22.59)],
        crs="EPSG:4490",
    )


def incidents() -> gpd.GeoDataFrame:
    """A layer with a datetime (milliseconds kept), a nullable integer and nulls."""
    return gpd.GeoDataFrame(
        {
            "incident_id": ["I1", "I2"],
            "kind": ["flood", "road_blocked"],
            "description": ["水浸街", None],
            "reported_at": pd.to_datetime(
                ["2026-06-01T08:30:00.123", "2026-06-01T09:00:00.000"]
            ).astype("datetime64[ms]"),
            "reporter": ["张三", "李四"],
            "people_affected": pd.array([12, None], dtype="Int64"),
            "status": ["reported", "closed"],
        },
        geometry=[shapely.Point(113.05, 22.61), shapely.Point(113.06, 22.62)],
        crs="EPSG:4490",
    )
